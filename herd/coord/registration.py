"""A service's entry in the run registry (``svc:{kind}:{id}``), kept alive by a heartbeat.

A service registers once it listens (``Coordinator.register``); a daemon thread
re-writes the whole record with ``SET ... PX ttl`` every ``heartbeat`` seconds.
Re-writing (rather than only extending the TTL) means a record lost with a
Redis restart reappears on the next beat. If the process dies, the record
expires ``ttl`` seconds after its last beat, and discovery stops returning it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import redis.exceptions as rexc

if TYPE_CHECKING:
    from herd.coord.coordinator import Coordinator

log = logging.getLogger(__name__)

_DOWN = (rexc.ConnectionError, rexc.TimeoutError)


@dataclasses.dataclass(frozen=True)
class ServiceRecord:
    """What a registered service publishes: where to dial it and who it is."""

    kind: str  # replay | params | learner | actor
    id: str
    grpc: str  # host:port to dial
    metrics: str = ""  # host:port of its Prometheus endpoint, if any
    pid: int = 0
    host: str = ""
    started_at: float = 0.0  # unix time of registration
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ServiceRecord:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Registration:
    """Keeps one :class:`ServiceRecord` published while the service runs.

    Heartbeat failures never raise: the first failure of an outage is logged as
    a warning, the recovery as info, and the beat keeps retrying.
    """

    def __init__(self, coordinator: Coordinator, record: ServiceRecord, *, ttl: float, heartbeat: float) -> None:
        if not 0 < heartbeat < ttl:
            raise ValueError(f"need 0 < heartbeat < ttl, got heartbeat={heartbeat} ttl={ttl}")
        self.coordinator = coordinator
        self.key = coordinator.keys.svc(record.kind, record.id)
        self.ttl = ttl
        self.heartbeat = heartbeat
        self.owns_coordinator = False  # close() also closes the coordinator (register_service sets it)
        self._record = record
        self._lock = threading.Lock()  # orders writes against close(): no write after the delete
        self._stop = threading.Event()
        self._closed = False
        self._down = False
        self._thread = threading.Thread(target=self._run, name=f"herd-heartbeat-{record.kind}", daemon=True)

    @property
    def record(self) -> ServiceRecord:
        return self._record

    @property
    def alive(self) -> bool:
        """True while open and the last write reached Redis."""
        return not self._closed and not self._down

    def start(self) -> Registration:
        """First write (raises if Redis is unreachable), then the heartbeat thread."""
        self._write()
        self._thread.start()
        return self

    def update(self, **fields: Any) -> None:
        """Changes published fields (e.g. ``metrics="host:9100"``) and re-publishes now.

        The write is best effort like a heartbeat; ``kind`` and ``id`` are fixed.
        """
        if {"kind", "id"} & fields.keys():
            raise ValueError("a registration's kind and id cannot change; register anew")
        with self._lock:
            self._record = dataclasses.replace(self._record, **fields)
        self._beat()

    def close(self) -> None:
        """Stops the heartbeat and deletes the record (it expires by TTL if Redis is down)."""
        if self._closed:
            return
        self._stop.set()
        with self._lock:
            self._closed = True
            try:
                self.coordinator.redis.delete(self.key)
            except _DOWN as e:
                log.info("could not delete registration, it will expire: %s", e, extra={"key": self.key})
        if self._thread.is_alive():
            self._thread.join(timeout=self.heartbeat + 3 * (self.coordinator.socket_timeout or 1.0))
        if self.owns_coordinator:
            self.coordinator.close()

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> bool:
        """SET the record with its TTL; True if the key had vanished (expired or Redis lost it)."""
        with self._lock:
            if self._closed:
                return False
            previous = self.coordinator.redis.set(
                self.key, self._record.to_json(), px=max(1, int(self.ttl * 1000)), get=True
            )
        return previous is None

    def _beat(self) -> None:
        try:
            vanished = self._write()
        except _DOWN as e:
            if not self._down:
                log.warning("heartbeat failed, retrying: %s", e, extra={"key": self.key, "redis": self.coordinator.url})
            self._down = True
            return
        if self._down or vanished:
            log.info("registration re-published", extra={"key": self.key, "after_outage": self._down})
        self._down = False

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat):
            self._beat()
