"""What is tunable in a learner service process (the run config holds the agent)."""

from __future__ import annotations

import dataclasses

from herd.options import CoordOptions, SecurityOptions, ServerOptions
from herd.config import option


@dataclasses.dataclass(frozen=True)
class LearnerServiceConfig:
    """One learner process."""

    server: ServerOptions = option(ServerOptions(), "where the control API listens")
    coord: CoordOptions = option(CoordOptions(), "Redis and the addresses of replay and params")
    security: SecurityOptions = option(SecurityOptions(), "TLS / mutual TLS and the shared token, server and clients")
    checkpoint_dir: str = option("", "where checkpoints go and are resumed from (empty = none)")
    checkpoint_every: int = option(500, "learner steps between checkpoints")
    keep_checkpoints: int = option(3, "how many checkpoints to keep")
    table: str = option("", "replay table to sample from (empty = the agent's table)")
    param_name: str = option("policy", "name the weights are published under")
    prefetch: int = option(1, "batches fetched ahead of the update in a background thread")
    lease_ttl_seconds: float = option(5.0, "learner lease TTL in Redis (one publishing learner)")
    log_every_seconds: float = option(5.0, "seconds between 'learner progress' log lines (0 = none)")

    def __post_init__(self) -> None:
        for name in ("checkpoint_every", "keep_checkpoints", "prefetch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lease_ttl_seconds <= 0:
            raise ValueError(f"lease_ttl_seconds must be > 0, got {self.lease_ttl_seconds}")
        if not self.param_name:
            raise ValueError("param_name must not be empty")
