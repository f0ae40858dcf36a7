"""What is tunable in the parameter server (built once at the entry point, then passed down)."""

from __future__ import annotations

import dataclasses

from herd.options import CoordOptions, SecurityOptions, ServerOptions
from herd.config import option

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclasses.dataclass(frozen=True)
class ParamServerConfig:
    """The parameter server: where it listens, where it persists, how big a model may be."""

    server: ServerOptions = option(ServerOptions(), "where the gRPC server listens")
    coord: CoordOptions = option(CoordOptions(), "Redis registration (empty redis_url = none)")
    security: SecurityOptions = option(SecurityOptions(), "TLS / mutual TLS and the shared token, server and clients")
    data_dir: str = option("", "directory holding the latest version of each name (empty = no persistence)")
    chunk_bytes: int = option(1 * MiB, "bytes of tensor data per streamed ParamsChunk (Fetch, Subscribe)")
    max_total_bytes: int = option(2 * GiB, "largest parameter set accepted; bigger publishes get RESOURCE_EXHAUSTED")
    persist_every_seconds: float = option(
        1.0,
        "0: persist each version before acknowledging its publish (durable, slower); "
        "> 0: persist the latest version at most this often in the background, and on shutdown",
    )
    max_subscribers: int = option(16, "open Subscribe streams allowed at once (each holds a server thread); more get RESOURCE_EXHAUSTED")

    def __post_init__(self) -> None:
        if not isinstance(self.server, ServerOptions):
            raise ValueError(f"server: expected ServerOptions, got {type(self.server).__name__}")
        if not isinstance(self.coord, CoordOptions):
            raise ValueError(f"coord: expected CoordOptions, got {type(self.coord).__name__}")
        if not isinstance(self.data_dir, str):
            raise ValueError(f"data_dir: expected a string, got {self.data_dir!r}")
        # A chunk plus its manifest (the first chunk carries both) must fit in one message.
        _check_int("chunk_bytes", self.chunk_bytes, 1024, self.server.max_message_bytes // 2)
        _check_int("max_total_bytes", self.max_total_bytes, 1, 1 << 40)
        _check_int("max_subscribers", self.max_subscribers, 0, 1024)
        if isinstance(self.persist_every_seconds, bool) or not 0 <= self.persist_every_seconds <= 3600:
            raise ValueError(f"persist_every_seconds: must be in [0, 3600], got {self.persist_every_seconds!r}")

    @property
    def server_threads(self) -> int:
        """Worker threads of the gRPC server: every subscriber's plus 16 for Publish, Fetch and List."""
        return self.max_subscribers + 16


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")
