"""How every Herd service goes live: its gRPC server, then its entry in the run's registry.

Where it sits: the four service ``main.py`` files call :func:`start_service` with their
servicer's ``register`` function and their ``server`` / ``coord`` / ``security`` options;
it binds (``herd.wire.server.start_server``: health, reflection, metrics, interceptors),
then registers the bound gRPC and ``/metrics`` addresses in Redis (``herd.coord``). If the
registration fails (Redis unreachable), the server is stopped again rather than left
serving unseen.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import grpc
from prometheus_client import CollectorRegistry

from herd.coord import Registration, register_service
from herd.options import CoordOptions, SecurityOptions, ServerOptions
from herd.wire.server import RunningServer, start_server


def start_service(
    kind: str,
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    server: ServerOptions,
    coord: CoordOptions,
    security: Optional[SecurityOptions] = None,
    *,
    registry: Optional[CollectorRegistry] = None,
    max_workers: int = 32,
    extra: Optional[dict[str, Any]] = None,
) -> tuple[RunningServer, Optional[Registration]]:
    """Starts the server of a ``kind`` service and registers it; the registration is None without Redis.

    ``extra`` goes into the registration record (e.g. ``{"device": "cuda:0"}``, which ``herd status`` shows).
    """
    running = start_server(
        register,
        service_names,
        host=server.host,
        port=server.port,
        max_message_bytes=server.max_message_bytes,
        security=security,
        max_workers=max_workers,
        registry=registry,
        metrics_port=server.metrics_port,
    )
    try:
        registration = register_service(coord, kind, server.address(running.port),
                                        server.metrics_address(running.metrics_port), extra=extra)
    except BaseException:  # e.g. Redis unreachable: do not leave a server running
        running.stop(0)
        raise
    return running, registration
