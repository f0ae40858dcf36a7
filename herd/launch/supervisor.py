"""Runs services as child OS processes and brings back the ones that die.

``herd up`` describes each service as a ``ServiceSpec`` (the command line a
container would run); the supervisor starts them, restarts a crashed one with
exponential backoff, and stops them in a given order with SIGTERM then SIGKILL.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import time
from typing import IO, Optional, Sequence

log = logging.getLogger(__name__)


class ServiceFailed(RuntimeError):
    """A service that crashes again and again right after starting."""


@dataclasses.dataclass
class ServiceSpec:
    """One supervised process."""

    name: str  # e.g. "replay", "actor-1"
    kind: str  # replay | params | learner | actor
    argv: list[str]
    env: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Child:
    spec: ServiceSpec
    process: Optional[subprocess.Popen] = None
    log_file: Optional[IO[bytes]] = None
    restarts: int = 0
    streak: int = 0  # restarts since the child last ran for ``healthy_after`` seconds
    next_start: float = 0.0
    started_at: float = 0.0
    stopping: bool = False


class Supervisor:
    """Starts, watches and stops a set of services; logs go to ``logs_dir/<name>.log``."""

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        logs_dir: str,
        *,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        healthy_after: float = 30.0,
        give_up_after: int = 8,
    ) -> None:
        self.children = {s.name: _Child(s) for s in specs}
        self.logs_dir = logs_dir
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after  # a child that ran this long restarts with the minimum backoff
        self.give_up_after = give_up_after  # restarts in a row (without a healthy run) before giving up
        os.makedirs(logs_dir, exist_ok=True)

    def start(self, name: str) -> None:
        child = self.children[name]
        if child.log_file is None:
            child.log_file = open(os.path.join(self.logs_dir, f"{name}.log"), "ab")
        env = {**os.environ, **child.spec.env}
        child.process = subprocess.Popen(
            child.spec.argv,
            stdout=child.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal goes to herd up, which stops children in order
        )
        child.started_at = time.monotonic()
        child.stopping = False

    def start_all(self) -> None:
        for name in self.children:
            self.start(name)

    def poll(self) -> list[str]:
        """Restarts children that exited on their own; returns the names (re)started now."""
        now = time.monotonic()
        restarted = []
        for name, child in self.children.items():
            if child.stopping or child.process is None:
                continue
            code = child.process.poll()
            if code is None:
                continue
            if child.next_start == 0.0:
                ran = now - child.started_at
                if ran >= self.healthy_after:
                    child.streak = 0
                delay = min(self.max_backoff, self.min_backoff * (2**child.streak))
                child.streak += 1
                child.next_start = now + delay
                if child.streak > self.give_up_after:
                    raise ServiceFailed(
                        f"service {name} keeps exiting (code {code}, {child.streak - 1} restarts in a row); "
                        f"see {os.path.join(self.logs_dir, name + '.log')}"
                    )
                log.warning(
                    "service %s exited with code %s; restarting in %.1fs (log: %s)",
                    name, code, delay, os.path.join(self.logs_dir, name + ".log"),
                )
            if now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                self.start(name)
                restarted.append(name)
        return restarted

    def pid(self, name: str) -> Optional[int]:
        child = self.children[name]
        return child.process.pid if child.process is not None and child.process.poll() is None else None

    def restarts(self) -> dict[str, int]:
        return {name: child.restarts for name, child in self.children.items()}

    def stop(self, names: Sequence[str], timeout: float = 20.0) -> None:
        """SIGTERM ``names`` together, wait up to ``timeout``, then SIGKILL what is left."""
        live = []
        for name in names:
            child = self.children[name]
            child.stopping = True
            if child.process is not None and child.process.poll() is None:
                try:
                    child.process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    continue
                live.append(child)
        deadline = time.monotonic() + timeout
        for child in live:
            assert child.process is not None
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("service did not stop in time, killing", extra={"service": child.spec.name})
                child.process.kill()
                child.process.wait()

    def close(self) -> None:
        self.stop(list(self.children))
        for child in self.children.values():
            if child.log_file is not None:
                child.log_file.close()
