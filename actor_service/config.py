"""What is tunable in an actor service process (the run config holds env and agent)."""

from __future__ import annotations

import dataclasses
from dataclasses import field

from herd.options import CoordOptions, ServerOptions


def _f(default, help: str):  # noqa: A002
    return field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class ActorServiceConfig:
    """One actor process."""

    server: ServerOptions = _f(ServerOptions(), "where the control API listens")
    coord: CoordOptions = _f(CoordOptions(), "Redis and the addresses of replay and params")
    actor_index: int = _f(0, "index of this actor in the run: seeds its environments")
    table: str = _f("trajectories", "replay table to write unrolls to")
    param_name: str = _f("policy", "name of the weights to act with")
    max_in_flight: int = _f(1, "unrolls sent to replay and not yet acknowledged")
    report_every_seconds: float = _f(0.5, "how often counters and episodes go to Redis")

    def __post_init__(self) -> None:
        if self.actor_index < 0:
            raise ValueError(f"actor_index must be >= 0, got {self.actor_index}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.report_every_seconds <= 0:
            raise ValueError(f"report_every_seconds must be > 0, got {self.report_every_seconds}")
