"""Options every service shares: where it listens and how it finds the cluster.

Each service's ``config.py`` embeds these two dataclasses; ``herd serve`` builds
them from flags, a YAML file or ``HERD_*`` environment variables.
"""

from __future__ import annotations

import dataclasses
from herd.config import option


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Where a service listens."""

    host: str = option("127.0.0.1", "address to bind (0.0.0.0 in containers)")
    port: int = option(0, "gRPC port (0 = any free port, reported through Redis)")
    advertise_host: str = option("", "host name others should dial (default: host, or 127.0.0.1 for 0.0.0.0)")
    max_message_mb: int = option(64, "largest gRPC message in MiB, each way")
    grace_seconds: float = option(3.0, "time open streams get to finish on shutdown")
    metrics_port: int = option(0, "port of the Prometheus /metrics endpoint (0 = any free port, -1 = none)")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"server.port must be in [0, 65535], got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            raise ValueError(f"server.metrics_port must be in [0, 65535], or -1 for none, got {self.metrics_port}")
        if not 1 <= self.max_message_mb <= 2047:
            raise ValueError(f"server.max_message_mb must be in [1, 2047], got {self.max_message_mb}")
        if self.grace_seconds < 0:
            raise ValueError(f"server.grace_seconds must be >= 0, got {self.grace_seconds}")

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024

    def address(self, port: int) -> str:
        """What other services dial to reach this one on ``port``."""
        host = self.advertise_host or ("127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host)
        return f"{host}:{port}"

    def metrics_address(self, port: int | None) -> str:
        """What Prometheus scrapes for a ``/metrics`` bound on ``port`` ("" when none is served)."""
        return self.address(port) if port else ""


@dataclasses.dataclass(frozen=True)
class CoordOptions:
    """How a service finds Redis and the other services of its run."""

    redis_url: str = option("", "Redis URL, e.g. redis://:password@host:6379/0 (empty = no coordination)")
    run_id: str = option("default", "run id: every Redis key of the run lives under herd:{run_id}:")
    service_id: str = option("", "this service's id (default: <kind>-<hostname>-<pid>)")
    heartbeat_seconds: float = option(1.0, "seconds between registration refreshes")
    ttl_seconds: float = option(5.0, "a registration expires this long after the last heartbeat")
    replay_address: str = option("", "static replay address host:port (overrides discovery)")
    params_address: str = option("", "static parameter-server address host:port (overrides discovery)")

    def __post_init__(self) -> None:
        if not self.run_id or any(c in self.run_id for c in " :{}"):
            raise ValueError(f"coord.run_id must be non-empty without spaces, ':' or braces, got {self.run_id!r}")
        if self.heartbeat_seconds <= 0:
            raise ValueError(f"coord.heartbeat_seconds must be > 0, got {self.heartbeat_seconds}")
        if self.ttl_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"coord.ttl_seconds ({self.ttl_seconds}) must exceed coord.heartbeat_seconds ({self.heartbeat_seconds})"
            )


