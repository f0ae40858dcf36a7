"""Batches counter increments and episode records to Redis from a background thread.

Actors finish thousands of steps per second; one Redis round trip per step would
cost more than the step. The reporter adds deltas locally and flushes them every
``interval`` seconds. When Redis is unreachable it keeps accumulating and flushes
on recovery, so no count is lost across a Redis outage. When Redis comes back
*empty* (restarted without persistence), an increment returns less than the
total this reporter saw before plus its delta: it then raises the counter back
to that (``set_counters_max``), so the run's counters never go backwards.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Optional

from herd.types import EpisodeRecord

log = logging.getLogger(__name__)


class Reporter:
    """``add(env_steps=..)`` / ``episode(record)`` are cheap; ``close()`` flushes."""

    def __init__(self, coordinator: Any, interval: float = 0.5, max_episodes: int = 10_000) -> None:
        self.coordinator = coordinator
        self.interval = interval
        self._lock = threading.Lock()
        self._deltas: collections.Counter[str] = collections.Counter()
        self._episodes: collections.deque[EpisodeRecord] = collections.deque(maxlen=max_episodes)
        self._stop = threading.Event()
        self._failing = False
        self._seen: dict[str, int] = {}  # the run-wide value of each counter after our last increment
        self._thread = threading.Thread(target=self._run, name="reporter", daemon=True)
        self._thread.start()

    def add(self, **deltas: int) -> None:
        with self._lock:
            self._deltas.update({k: v for k, v in deltas.items() if v})

    def episode(self, record: EpisodeRecord) -> None:
        with self._lock:
            self._episodes.append(record)

    def flush(self) -> bool:
        """Sends what has accumulated; returns False (keeping it) if Redis is down."""
        with self._lock:
            deltas = dict(self._deltas)
            episodes = list(self._episodes)
            self._deltas.clear()
            self._episodes.clear()
        if not deltas and not episodes:
            return True
        try:
            if episodes:
                self.coordinator.report_episodes(episodes)
                episodes = []
            if deltas:
                self._seen.update(self._increment(deltas))
        except Exception as e:  # noqa: BLE001 - Redis down: keep the data, retry later
            with self._lock:
                self._deltas.update(deltas)
                self._episodes.extendleft(reversed(episodes))
            if not self._failing:
                log.warning("redis unreachable, keeping counters locally", extra={"error": str(e)})
                self._failing = True
            return False
        if self._failing:
            log.info("redis reachable again, counters flushed")
            self._failing = False
        return True

    def _increment(self, deltas: dict[str, int]) -> dict[str, int]:
        totals = self.coordinator.incr(**deltas)
        floor = {k: self._seen[k] + v for k, v in deltas.items() if k in self._seen and totals[k] < self._seen[k] + v}
        if floor:  # Redis lost the counters since our last flush: put back what we know
            log.warning("redis lost the run counters, re-asserting them", extra={"counters": floor})
            try:
                totals.update(self.coordinator.set_counters_max(**floor))
            except Exception:  # noqa: BLE001 - the increment went through: do not count it again
                totals.update(floor)  # the next increment comes back below this and retries
        return totals

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self, timeout: Optional[float] = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.flush()
