"""Pause/resume for the loops of long-running services (actor, learner).

The servicer flips the gate from a gRPC thread; the work loop calls
``wait_while_paused`` between steps, so a pause never interrupts a step.
"""

from __future__ import annotations

import threading
from typing import Optional


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
