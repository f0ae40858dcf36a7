"""``herd up``'s hold on Redis: brings a local Redis back and re-asserts the run's state.

Where it sits: the ``herd up`` progress loop (``herd.launch.cluster``) calls
:meth:`RedisKeeper.poll` instead of reading the counters itself. Redis holds the
run's shared state (DESIGN.md §5) but ``herd up`` runs it without persistence, so
a crashed Redis comes back empty. The keeper

* restarts a ``LocalRedis`` that died, on the same port (every service holds its
  URL), with exponential backoff if it fails to start;
* notices that Redis lost the run's state — the ``config`` key it wrote is gone, or
  a counter went below what it saw — which also covers an external ``--redis-url``
  that was restarted behind its back;
* then re-writes the config and raises every counter back to the highest value it
  saw (``set_counters_max``: increments the services flushed in the meantime are
  kept, not overwritten).

The rest comes back from the services themselves: registrations by their next
heartbeat, the learner lease by the learner's ``LeaseKeeper``, and counts made
while Redis was down by each service's ``Reporter`` (it keeps them and flushes on
recovery). What can be lost are the increments that reached Redis after the
keeper's last read (one poll interval, 0.2 s) and episode records not read yet.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from herd.coord import Coordinator
from herd.coord.server import LocalRedis

log = logging.getLogger(__name__)


class RedisKeeper:
    """Reads the run's counters for ``herd up``; keeps Redis and the run state there alive."""

    def __init__(
        self,
        coordinator: Coordinator,
        config: dict[str, Any],
        redis: Optional[LocalRedis] = None,
        *,
        min_backoff: float = 0.5,
        max_backoff: float = 5.0,
    ) -> None:
        self.coordinator = coordinator
        self.config = config
        self.redis = redis  # None: an external Redis, watched but not restarted
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.restarts = 0  # times the local Redis was started again
        self.reasserts = 0  # times the run's state was written back
        self.seen: dict[str, int] = {}  # the highest value of each counter read so far
        self._backoff = min_backoff
        self._next_start = 0.0
        self._lost = False  # Redis came back empty: re-assert before the next read

    def start(self, counters: Optional[dict[str, int]] = None) -> None:
        """Writes the config (and ``counters``, max-merged: a resumed run's) at start-up."""
        self.coordinator.set_config(self.config)
        if counters:
            self.seen.update({k: int(v) for k, v in counters.items()})
            self.coordinator.set_counters_max(**self.seen)

    def poll(self) -> Optional[dict[str, int]]:
        """The run's counters (never below what was seen before), or None while Redis is unreachable."""
        if self.redis is not None and not self.redis.alive() and not self._restart():
            return None
        try:
            has_config, counters = self._read()
            if self._lost or not has_config or any(counters.get(k, 0) < v for k, v in self.seen.items()):
                self._reassert()
                counters = self.coordinator.counters()
        except Exception as e:  # noqa: BLE001 - Redis down or restarting: try again next poll
            log.warning("redis unreachable", extra={"error": str(e)})
            return None
        for key, value in counters.items():
            self.seen[key] = max(self.seen.get(key, 0), value)
        return dict(self.seen)

    def _restart(self) -> bool:
        assert self.redis is not None
        now = time.monotonic()
        if now < self._next_start:
            return False
        log.warning("redis exited; restarting it on port %s", self.redis.port)
        try:
            self.redis.restart()
        except Exception as e:  # noqa: BLE001 - e.g. the port is still taken: back off and retry
            self._next_start = now + self._backoff
            self._backoff = min(self.max_backoff, self._backoff * 2)
            log.warning("redis did not restart, retrying in %.1fs: %s", self._backoff, e)
            return False
        self._backoff = self.min_backoff
        self.restarts += 1
        self._lost = True
        return True

    def _read(self) -> tuple[bool, dict[str, int]]:
        """Whether the config key exists (it vanishes when Redis restarts empty), and the counters."""
        keys = self.coordinator.keys
        with self.coordinator.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.config)
            pipe.hgetall(keys.counters)
            has_config, raw = pipe.execute()
        return bool(has_config), {k: int(v) for k, v in raw.items()}

    def _reassert(self) -> None:
        self.coordinator.set_config(self.config)
        if self.seen:
            self.coordinator.set_counters_max(**self.seen)
        self._lost = False
        self.reasserts += 1
        log.warning("redis lost the run's state; config and counters re-asserted", extra={"counters": dict(self.seen)})
