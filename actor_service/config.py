"""What is tunable in an actor service process (the run config holds env and agent)."""

from __future__ import annotations

import dataclasses

from herd.options import CoordOptions, SecurityOptions, ServerOptions
from herd.config import option


@dataclasses.dataclass(frozen=True)
class ActorServiceConfig:
    """One actor process."""

    server: ServerOptions = option(ServerOptions(), "where the control API listens")
    coord: CoordOptions = option(CoordOptions(), "Redis and the addresses of replay and params")
    security: SecurityOptions = option(SecurityOptions(), "TLS / mutual TLS and the shared token, server and clients")
    actor_index: int = option(0, "index of this actor in the run: seeds its environments")
    table: str = option("", "replay table to write experience to (empty = the agent's table)")
    param_name: str = option("policy", "name of the weights to act with")
    max_in_flight: int = option(1, "unrolls sent to replay and not yet acknowledged")
    report_every_seconds: float = option(0.5, "how often counters and episodes go to Redis")

    def __post_init__(self) -> None:
        if self.actor_index < 0:
            raise ValueError(f"actor_index must be >= 0, got {self.actor_index}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.report_every_seconds <= 0:
            raise ValueError(f"report_every_seconds must be > 0, got {self.report_every_seconds}")
