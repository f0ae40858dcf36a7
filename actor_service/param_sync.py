"""Pulling weights without waiting for the parameter server.

Where it sits: the actor service wraps its ``ParamClient`` in a
``BackgroundFetcher``. The actor still asks for newer weights at every unroll
boundary, but the answer is whatever the background thread already holds, and
the question schedules the next fetch: the round trip overlaps with acting instead
of stalling it. The fetch is timed to land just before the actor's next question
(the thread learns the interval between questions and the round-trip time), so
the weights it hands over are fresh, not one whole unroll old.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from herd.interfaces import Params, VariableSource

log = logging.getLogger("herd.actor")


class BackgroundFetcher:
    """``VariableSource`` for one parameter name whose ``fetch`` never waits on the network."""

    def __init__(
        self, inner: VariableSource, name: str, *, retry_seconds: float = 0.5, just_in_time: bool = True
    ) -> None:
        self.inner = inner
        self.name = name
        self.retry_seconds = retry_seconds
        self.just_in_time = just_in_time
        self._asked_at = 0.0  # monotonic time of the last question
        self._period = 0.0  # EMA of the time between questions
        self._rtt = 0.0  # EMA of a fetch's round trip
        self.fetches = 0
        self.failures = 0
        self._latest: Optional[Params] = None
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="param-fetch", daemon=True)
        self._thread.start()

    def fetch(self, name: str, min_version: int = 0) -> Optional[Params]:
        """The newest version received so far if it is ``>= min_version``; asks for a newer one."""
        if name != self.name:
            return self.inner.fetch(name, min_version)
        now = time.monotonic()
        if self._asked_at:
            interval = now - self._asked_at
            self._period = interval if not self._period else 0.8 * self._period + 0.2 * interval
        self._asked_at = now
        self._wanted.set()
        with self._lock:
            latest = self._latest
        return latest if latest is not None and latest.version >= min_version else None

    def close(self) -> None:
        self._closed.set()
        self._wanted.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._closed.is_set():
                return
            delay = self._delay()
            if delay > 0 and self._closed.wait(delay):
                return
            with self._lock:
                have = self._latest.version if self._latest is not None else -1
            t0 = time.monotonic()
            try:
                params = self.inner.fetch(self.name, min_version=have + 1)
                self.fetches += 1
                rtt = time.monotonic() - t0
                self._rtt = rtt if not self._rtt else 0.8 * self._rtt + 0.2 * rtt
            except Exception as e:  # noqa: BLE001 - params server down past the client's retries
                self.failures += 1
                log.warning("parameter fetch failed, will retry", extra={"error": str(e)})
                self._wanted.set()
                self._closed.wait(self.retry_seconds)
                continue
            if params is not None:
                with self._lock:
                    if self._latest is None or params.version > self._latest.version:
                        self._latest = params

    def _delay(self) -> float:
        """How long to wait after a question so the fetch lands just before the next one."""
        if not self.just_in_time or not self._period or self._latest is None:
            return 0.0  # no rhythm yet, or the actor still waits for its first weights
        lead = 2.0 * self._rtt + 0.002  # finish ahead of the next question, with a margin
        return max(0.0, self._asked_at + self._period - lead - time.monotonic())
