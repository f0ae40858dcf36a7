"""Pause/resume for the loops of long-running services (actor, learner).

The servicer flips the gate from a gRPC thread; the work loop calls
``wait_while_paused`` between steps, so a pause never interrupts a step.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Optional


class PauseGate:
    """A thread-safe paused/running flag the work loop can wait on."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self.reason = ""

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self, reason: str = "") -> bool:
        """Pauses; returns whether it was already paused."""
        was = self.paused
        self.reason = reason
        self._running.clear()
        return was

    def resume(self) -> bool:
        """Resumes; returns whether it was paused."""
        was = self.paused
        self._running.set()
        return was

    def wait_while_paused(self, stop: Optional[threading.Event] = None, poll: float = 0.2) -> None:
        """Returns once running (or once ``stop`` is set)."""
        while not self._running.wait(poll):
            if stop is not None and stop.is_set():
                return


class PolledFlag:
    """Asks ``check()`` (e.g. Redis' stop flag) at most every ``every`` seconds from a hot loop.

    Errors of ``check`` (Redis down) count as "not set": the loop keeps working.
    """

    def __init__(self, check: Optional[Callable[[], bool]], every: float = 0.5) -> None:
        self.check = check
        self.every = every
        self._last = 0.0

    def is_set(self) -> bool:
        if self.check is None:
            return False
        now = time.monotonic()
        if now - self._last < self.every:
            return False
        self._last = now
        try:
            return bool(self.check())
        except Exception:  # noqa: BLE001 - coordination down: keep going
            return False


def parse_reload(config_json: str, example: str) -> dict[str, Any]:
    """The ``agent`` section of a ``ReloadConfig`` request; ``ValueError`` naming what is wrong."""
    if not config_json:
        raise ValueError(f"config_json: give the changed fields as JSON, e.g. {example}")
    try:
        update = json.loads(config_json)
    except json.JSONDecodeError as e:
        raise ValueError(f"config_json is not valid JSON: {e}") from e
    if not isinstance(update, dict):
        raise ValueError("config_json must be a JSON object like {\"agent\": {...}}")
    unknown = set(update) - {"agent"}
    if unknown:
        raise ValueError(f"config_json: unknown sections {sorted(unknown)}; allowed: ['agent']")
    agent = update.get("agent", {})
    if not isinstance(agent, dict):
        raise ValueError("config_json: 'agent' must be an object")
    return agent
