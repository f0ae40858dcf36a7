"""How every Herd server starts and stops (replay, params, learner, actor).

One place adds the standard health service and server reflection, applies the
message-size limits of :mod:`herd.wire.channel`, binds (port 0 picks a free one),
and shuts down gracefully: on SIGTERM/SIGINT health turns ``NOT_SERVING``,
streams get ``grace`` seconds to drain, then the service's own ``on_stop``
(checkpointing) runs once no call is in flight. Every server counts its RPCs by
final code and latency (:mod:`herd.wire.interceptor`) into the service's metrics
registry, which it serves on ``/metrics`` at ``metrics_port`` (-1 = not served).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from concurrent import futures
from typing import TYPE_CHECKING, Callable, Iterable, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from herd.telemetry.metrics import GrpcServerMetrics, MetricsEndpoint, new_registry, serve_metrics
from herd.wire.channel import DEFAULT_MAX_MESSAGE_BYTES, server_options
from herd.wire.interceptor import MetricsInterceptor
from herd.wire.malformed import MalformedRequests

if TYPE_CHECKING:
    from herd.options import SecurityOptions

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunningServer:
    """A started server: its bound port and the health servicer to flip on shutdown."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: tuple[str, ...]
    registry: Optional[CollectorRegistry] = None  # the service's metrics (gRPC ones included)
    metrics: Optional[MetricsEndpoint] = None  # its /metrics endpoint, if served

    @property
    def metrics_port(self) -> Optional[int]:
        """Bound port of ``/metrics``; None when not served."""
        return self.metrics.port if self.metrics is not None else None

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("",) + self.service_names:
            self.health.set(name, status)

    def stop(self, grace: float = 5.0) -> None:
        self.set_serving(False)
        self.server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.close()


def start_server(
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_workers: int = 32,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
    credentials: Optional[grpc.ServerCredentials] = None,
    security: Optional["SecurityOptions"] = None,
    registry: Optional[CollectorRegistry] = None,
    metrics_port: int = -1,
) -> RunningServer:
    """Builds, binds and starts a server; ``register`` adds the service's servicers.

    ``security`` adds TLS / mutual TLS and the token check (:mod:`herd.wire.security`);
    the token interceptor runs after ``interceptors``, so they also see refused calls.
    ``registry`` holds the service's metrics (a new one if None); the gRPC metrics join it, and
    it is served on ``http://host:metrics_port/metrics`` unless ``metrics_port`` is -1 (0 = any free port).
    """
    if security is not None:
        from herd.wire.security import server_security

        credentials, auth = server_security(security, credentials)
        interceptors = [*interceptors, *auth]
    registry = registry if registry is not None else new_registry()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=server_options(max_message_bytes),
        # Outermost: the metrics see every final code, refusals included. Innermost: undecodable
        # request bytes answer INVALID_ARGUMENT, not INTERNAL (herd.wire.malformed).
        interceptors=[MetricsInterceptor(GrpcServerMetrics(registry)), *interceptors, MalformedRequests()],
        maximum_concurrent_rpcs=None,
    )
    register(server)
    names = tuple(service_names)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        names + (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    try:
        metrics = serve_metrics(registry, host, metrics_port) if metrics_port != -1 else None
    except BaseException:
        server.stop(None)  # bound, never started: release its port
        raise
    server.start()
    running = RunningServer(server=server, port=bound, health=health_servicer, service_names=names,
                            registry=registry, metrics=metrics)
    running.set_serving(True)
    return running


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM / SIGINT set ``stop`` (only the main thread may install handlers; elsewhere a no-op)."""

    def _handler(signum: int, _frame: object) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)


def wait_for_termination(
    running: RunningServer,
    *,
    grace: float = 5.0,
    on_stop: Optional[Callable[[], None]] = None,
    stop_event: Optional[threading.Event] = None,
) -> None:
    """Blocks until SIGTERM/SIGINT (or ``stop_event``), then shuts down gracefully."""
    event = stop_event or threading.Event()
    install_stop_signals(event)
    event.wait()
    # Refuse new calls, give open streams ``grace`` seconds, cancel the rest; only
    # then run ``on_stop`` (e.g. the final checkpoint), when nothing writes any more.
    running.stop(grace)
    if on_stop is not None:
        on_stop()
    log.info("stopped")
