"""Coordination of a run's services through Redis (DESIGN.md §5).

Services call :func:`register_service` once they listen and :func:`resolve_address`
to find the replay and the parameter server; both work without Redis when the
options give static addresses. The pieces: :mod:`~herd.coord.keys` (key names),
:mod:`~herd.coord.coordinator` (the operations), :mod:`~herd.coord.registration`
(heartbeats), :mod:`~herd.coord.lease` (the learner lease) and
:mod:`~herd.coord.server` (a local ``redis-server`` for tests and ``herd up``).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from herd.coord.coordinator import REDIS_DOWN, Coordinator, redact
from herd.coord.keys import ACTOR, KINDS, LEARNER, PARAMS, REPLAY, RunKeys, check_kind
from herd.coord.lease import LeaseKeeper
from herd.coord.registration import Registration, ServiceRecord
from herd.coord.reporter import Reporter
from herd.options import CoordOptions

__all__ = [
    "ACTOR", "KINDS", "LEARNER", "PARAMS", "REPLAY", "REDIS_DOWN",
    "Coordinator", "LeaseKeeper", "Registration", "Reporter", "RunKeys", "ServiceRecord",
    "default_service_id", "redact", "register_service", "resolve_address",
]  # fmt: skip


def default_service_id(options: CoordOptions, kind: str) -> str:
    """``options.service_id``, else ``{kind}-{hostname}-{pid}``."""
    return options.service_id or f"{kind}-{socket.gethostname()}-{os.getpid()}"


def register_service(
    options: CoordOptions, kind: str, grpc_address: str, metrics_address: str = "",
    extra: dict[str, Any] | None = None,
) -> Registration | None:
    """Publishes a started service in its run's registry; None when no Redis is configured.

    The returned registration owns its coordinator: ``close()`` deletes the record
    and closes the connection. Raises ``redis.exceptions.ConnectionError`` if Redis
    is unreachable at this first write.
    """
    if not options.redis_url:
        return None
    coord = Coordinator.from_options(options)
    try:
        reg = coord.register(
            kind,
            default_service_id(options, kind),
            grpc_address,
            metrics_address=metrics_address,
            extra=extra,
            ttl=options.ttl_seconds,
            heartbeat=options.heartbeat_seconds,
        )
    except BaseException:
        coord.close()
        raise
    reg.owns_coordinator = True
    return reg


_STATIC = {REPLAY: "replay_address", PARAMS: "params_address"}


def resolve_address(options: CoordOptions, kind: str, timeout: float | None = 30.0) -> str:
    """Where to dial a ``kind`` service: the static address if configured, else discovery.

    Raises ``ValueError`` when neither a static address nor a Redis URL is set,
    and ``TimeoutError`` when no such service registers within ``timeout`` seconds.
    """
    check_kind(kind)
    field = _STATIC.get(kind)
    static = getattr(options, field) if field else ""
    if static:
        return static
    if not options.redis_url:
        how = f"coord.{field} (HERD_COORD__{field.upper()}) or " if field else ""
        raise ValueError(f"cannot find the {kind} service: set {how}coord.redis_url (HERD_COORD__REDIS_URL)")
    with Coordinator.from_options(options) as coord:
        return coord.discover(kind, timeout=timeout).grpc
