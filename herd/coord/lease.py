"""Holding a named lease in the background: one publishing learner per run.

The learner runs a ``LeaseKeeper(coord, "learner", learner_id, ttl=5, renew_every=1)``
and checks ``keeper.held`` before each weight publication. A second learner
keeps trying and takes over once the first one's lease expires.

``held`` is conservative: it turns False as soon as a renewal fails (Redis down,
or the lease found in someone else's hands), and also when ``ttl`` has passed
since the last confirmed renewal even if the renewing thread is stuck, because
by then Redis may have handed the lease to someone else.
"""

from __future__ import annotations

import logging
import threading
import time

from herd.coord.coordinator import REDIS_DOWN, Coordinator

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Acquires lease ``name`` for ``holder`` and renews it every ``renew_every`` seconds."""

    def __init__(
        self, coordinator: Coordinator, name: str, holder: str, ttl: float, renew_every: float | None = None
    ) -> None:
        renew_every = ttl / 3 if renew_every is None else renew_every
        if not 0 < renew_every < ttl:
            raise ValueError(f"need 0 < renew_every < ttl, got renew_every={renew_every} ttl={ttl}")
        self.coordinator = coordinator
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.renew_every = renew_every
        self._cond = threading.Condition()
        self._held = False
        self._valid_until = 0.0  # monotonic time until which our last renewal guarantees the lease
        self._closed = False
        self._failing = False  # inside a Redis outage (log once)
        self._stop = threading.Event()
        coordinator.keys.lease(name)  # validates the name now rather than in the thread
        self._thread = threading.Thread(target=self._run, name=f"herd-lease-{name}", daemon=True)
        self._thread.start()

    @property
    def held(self) -> bool:
        """True while this holder is sure to hold the lease."""
        with self._cond:
            return self._held and time.monotonic() < self._valid_until

    def wait_acquired(self, timeout: float | None = None) -> bool:
        """Blocks until the lease is held (True) or ``timeout`` passes / the keeper closes (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self._held or self._closed, timeout)
        return self.held

    def close(self) -> None:
        """Stops renewing and releases the lease if still ours (best effort)."""
        if self._closed:
            return
        self._stop.set()
        self._thread.join(timeout=self.renew_every + 3 * (self.coordinator.socket_timeout or 1.0))
        with self._cond:
            self._closed = True
            self._held = False
            self._cond.notify_all()
        try:
            self.coordinator.release_lease(self.name, self.holder)
        except REDIS_DOWN as e:
            log.info("could not release lease %s, it will expire: %s", self.name, e)

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _attempt(self) -> None:
        started = time.monotonic()
        coord = self.coordinator
        try:
            # Renew if ours (also after a blip we could not confirm), else take it if free.
            ok = coord.renew_lease(self.name, self.holder, self.ttl) or coord.acquire_lease(
                self.name, self.holder, self.ttl
            )
            other = None if ok else coord.lease_holder(self.name)
            if self._failing:
                log.info("Redis reachable again for lease %s", self.name)
            self._failing = False
        except REDIS_DOWN as e:
            if not self._failing:
                log.warning("cannot renew lease %s, counting it as lost: %s", self.name, e)
            self._failing, ok, other = True, False, None
        with self._cond:
            if self._closed:
                return
            if ok != self._held:
                log.info(
                    "lease %s %s", self.name, "acquired" if ok else f"lost (holder now {other})",
                    extra={"holder": self.holder},
                )
            self._held = ok
            self._valid_until = started + self.ttl if ok else 0.0
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            self._attempt()
            if self._stop.wait(self.renew_every):
                return
