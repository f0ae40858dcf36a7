"""The run's shared state in Redis: who serves where, counters, leases, stop flag.

Every service of a run holds one :class:`Coordinator`. Services *register* their
gRPC address (kept alive by a heartbeat, see :mod:`herd.coord.registration`);
actors and the learner *discover* the replay and parameter server through it
unless static addresses are configured; actors report finished episodes and
bump ``env_steps``; the learner holds ``lease:learner`` while it publishes
weights; the CLI sets ``stop`` to end the run. Keys: :mod:`herd.coord.keys`.

Errors: methods that read or write the run's state (counters, leases, stop,
config, episodes, ``services``, ``register``'s first write) raise
``redis.exceptions.ConnectionError`` / ``redis.exceptions.TimeoutError`` when
Redis is unreachable; callers decide whether to retry. Background work never
raises: heartbeats (:class:`Registration`) and :class:`LeaseKeeper` log one
warning per outage and retry. ``ping`` returns False and ``discover`` keeps
waiting while Redis is down. A wrong or missing password raises
``redis.exceptions.AuthenticationError`` (a ``ConnectionError``) everywhere,
including ``ping`` and ``discover``, because waiting will not fix it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.parse
from typing import Any, Sequence, cast

import redis
import redis.exceptions as rexc
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from herd.coord import episodes, scripts
from herd.coord.keys import EPISODES_MAXLEN, RunKeys, check_kind
from herd.coord.registration import Registration, ServiceRecord
from herd.options import CoordOptions
from herd.types import EpisodeRecord

log = logging.getLogger(__name__)

# Errors that mean "Redis is not reachable right now" (AuthenticationError is a
# ConnectionError too, but it means misconfiguration: callers re-raise it).
REDIS_DOWN = (rexc.ConnectionError, rexc.TimeoutError)

def redact(url: str) -> str:
    """``redis://:secret@h:1/0`` -> ``redis://:***@h:1/0`` (for logs and errors)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class Coordinator:
    """One service's handle on the coordination state of run ``run_id``."""

    def __init__(self, redis_url: str, run_id: str, *, socket_timeout: float | None = 2.0) -> None:
        if not redis_url:
            raise ValueError("redis_url is empty: coordination needs a Redis URL such as redis://host:6379/0")
        self.run_id = run_id
        self.keys = RunKeys(run_id)
        self.url = redact(redis_url)
        self.socket_timeout = socket_timeout
        # One quick retry covers a pooled connection that died with a Redis
        # restart; longer outages surface to the caller (or heartbeat) at once.
        self.redis: redis.Redis = redis.Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
        )
        self._max_scr = self.redis.register_script(scripts.SET_MAX)
        self._renew_scr = self.redis.register_script(scripts.RENEW)
        self._release_scr = self.redis.register_script(scripts.RELEASE)

    @classmethod
    def from_options(cls, options: CoordOptions) -> Coordinator:
        return cls(options.redis_url, options.run_id)

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True if Redis answers, False if unreachable; raises AuthenticationError on a bad password."""
        try:
            return bool(self.redis.ping())
        except rexc.AuthenticationError as e:
            raise self._auth_error(e) from e
        except REDIS_DOWN:
            return False

    def _auth_error(self, e: rexc.AuthenticationError) -> rexc.AuthenticationError:
        return rexc.AuthenticationError(
            f"Redis at {self.url} refused the credentials; put the password in the URL as "
            f"redis://:PASSWORD@host:port/db ({e})"
        )

    # -- registry ---------------------------------------------------------

    def register(
        self,
        kind: str,
        service_id: str,
        grpc_address: str,
        *,
        metrics_address: str = "",
        pid: int | None = None,
        extra: dict[str, Any] | None = None,
        ttl: float = 5.0,
        heartbeat: float = 1.0,
    ) -> Registration:
        """Publishes this service under ``svc:{kind}:{service_id}`` and keeps it alive.

        The first write raises if Redis is unreachable (a wrong URL shows at
        start-up); later heartbeats re-write the whole record with its TTL, so
        the record comes back by itself after Redis restarts or loses its data.
        """
        record = ServiceRecord(
            kind=check_kind(kind),
            id=service_id,
            grpc=grpc_address,
            metrics=metrics_address,
            pid=os.getpid() if pid is None else pid,
            host=socket.gethostname(),
            started_at=time.time(),
            extra=dict(extra or {}),
        )
        try:
            return Registration(self, record, ttl=ttl, heartbeat=heartbeat).start()
        except rexc.AuthenticationError as e:
            raise self._auth_error(e) from e

    def services(self, kind: str | None = None) -> list[ServiceRecord]:
        """Live registrations of the run (of one kind if given), sorted by kind and id."""
        keys = list(self.redis.scan_iter(match=self.keys.svc_pattern(kind), count=500))
        if not keys:
            return []
        out = []
        for key, value in zip(keys, self.redis.mget(keys)):
            if value is None:  # expired between SCAN and MGET
                continue
            try:
                out.append(ServiceRecord.from_json(value))
            except (ValueError, TypeError, KeyError):
                log.warning("skipping malformed registration", extra={"key": key})
        return sorted(out, key=lambda r: (r.kind, r.id))

    def discover(self, kind: str, timeout: float | None = None, poll: float = 0.1) -> ServiceRecord:
        """Waits until a ``kind`` service is registered; returns the most recently started one.

        Keeps polling while Redis is unreachable. Raises the builtin
        ``TimeoutError`` (naming the kind and the run) after ``timeout`` seconds.
        """
        check_kind(kind)
        deadline = None if timeout is None else time.monotonic() + timeout
        outage: Exception | None = None
        while True:
            try:
                found = self.services(kind)
                if found:
                    return max(found, key=lambda r: r.started_at)
                outage = None
            except rexc.AuthenticationError as e:
                raise self._auth_error(e) from e
            except REDIS_DOWN as e:
                if outage is None:
                    log.warning("Redis unreachable while discovering %s: %s", kind, e, extra={"redis": self.url})
                outage = e
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                why = f"; Redis at {self.url} unreachable: {outage}" if outage else ""
                raise TimeoutError(f"no '{kind}' service registered in run '{self.run_id}' after {timeout:g}s{why}")
            time.sleep(poll if deadline is None else min(poll, deadline - now))

    # -- counters ---------------------------------------------------------

    def incr(self, **deltas: int) -> dict[str, int]:
        """Adds ``deltas`` to the run counters in one transaction; returns the new values."""
        if not deltas:
            return {}
        with self.redis.pipeline(transaction=True) as pipe:
            for field, delta in deltas.items():
                pipe.hincrby(self.keys.counters, field, int(delta))
            values = pipe.execute()
        return {field: int(v) for field, v in zip(deltas, values)}

    def counters(self) -> dict[str, int]:
        values = cast("dict[str, str]", self.redis.hgetall(self.keys.counters))  # decode_responses: str
        return {k: int(v) for k, v in values.items()}

    def set_counters_max(self, **values: int) -> dict[str, int]:
        """Raises each counter to at least ``values[field]``, atomically; returns the results.

        Lets a service re-assert what it knows after Redis lost its data (the
        learner re-asserts ``learner_steps`` from its checkpoint).
        """
        if not values:
            return {}
        args = [x for field, v in values.items() for x in (field, int(v))]
        flat = self._max_scr(keys=[self.keys.counters], args=args)
        return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}

    # -- leases -----------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Takes lease ``name`` for ``ttl`` seconds if nobody holds it."""
        return bool(self.redis.set(self.keys.lease(name), holder, nx=True, px=_ms(ttl)))

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extends the lease to ``ttl`` from now, only if ``holder`` still holds it."""
        return bool(self._renew_scr(keys=[self.keys.lease(name)], args=[holder, _ms(ttl)]))

    def release_lease(self, name: str, holder: str) -> bool:
        """Deletes the lease, only if ``holder`` holds it."""
        return bool(self._release_scr(keys=[self.keys.lease(name)], args=[holder]))

    def lease_holder(self, name: str) -> str | None:
        return cast("str | None", self.redis.get(self.keys.lease(name)))

    # -- stop flag and config ----------------------------------------------

    def request_stop(self) -> None:
        self.redis.set(self.keys.stop, "1")

    def should_stop(self) -> bool:
        return bool(self.redis.exists(self.keys.stop))

    def clear_stop(self) -> None:
        self.redis.delete(self.keys.stop)

    def set_config(self, config: dict[str, Any]) -> None:
        self.redis.set(self.keys.config, json.dumps(config, sort_keys=True))

    def get_config(self) -> dict[str, Any] | None:
        text = self.redis.get(self.keys.config)
        return None if text is None else json.loads(text)

    # -- episodes -----------------------------------------------------------

    def report_episodes(self, records: Sequence[EpisodeRecord]) -> None:
        """Appends finished episodes to the run's stream (one pipelined round trip)."""
        if not records:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for record in records:
                fields = cast("dict[Any, Any]", episodes.encode(record))
                pipe.xadd(self.keys.episodes, fields, maxlen=EPISODES_MAXLEN, approximate=True)
            pipe.execute()

    def read_episodes(
        self, after_id: str = "0-0", count: int = 1000, block_ms: int | None = None
    ) -> tuple[list[EpisodeRecord], str]:
        """Episodes added after stream id ``after_id`` and the id to pass next time.

        ``block_ms``: wait up to that long for new episodes (None or 0: return at
        once). Long waits are split so no single call outlives the socket timeout.
        """
        deadline = time.monotonic() + (block_ms or 0) / 1000
        step_cap = None if self.socket_timeout is None else max(1, int(self.socket_timeout * 500))
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            block = None if not block_ms or left < 1 else (left if step_cap is None else min(left, step_cap))
            reply = self.redis.xread({self.keys.episodes: after_id}, count=count, block=block)
            entries = episodes.stream_entries(reply)
            if entries or block is None:
                break
        records = [episodes.decode(fields) for _, fields in entries if fields]
        return records, (entries[-1][0] if entries else after_id)

