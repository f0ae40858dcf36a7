"""Fixtures: real replay servers on loopback free ports, served by ``replay_service.main.serve``."""

from __future__ import annotations

from typing import Callable, Iterator

import grpc
import numpy as np
import pytest

from herd.options import ServerOptions
from herd.testing.servers import ServiceThread
from herd.v1 import replay_pb2, replay_pb2_grpc
from replay_service.config import ReplayServiceConfig, TableConfig
from replay_service.main import serve

TABLES = (
    TableConfig.queue("queue", 64),
    TableConfig.queue("small", 2),  # fills up at once: rate-limiter timeouts
    TableConfig.uniform_replay("uniform", 100),
    TableConfig(name="prio", sampler="prioritized", remover="fifo", max_size=100, max_times_sampled=0,
                rate_limiter="min_size", priority_exponent=1.0),
    TableConfig.uniform_replay("scratch", 1000),  # "does the server still serve?" probes
)


class RunningReplay(ServiceThread):
    """A replay server running ``serve`` in a thread; ``stop()`` shuts it down like SIGTERM would."""

    def __init__(self, config: ReplayServiceConfig) -> None:
        super().__init__(serve, config, name="replay server")


def make_config(*, port: int = 0, tables: tuple[TableConfig, ...] = TABLES, max_message_mb: int = 64,
                **fields: object) -> ReplayServiceConfig:
    server = ServerOptions(port=port, grace_seconds=1.0, max_message_mb=max_message_mb)
    return ReplayServiceConfig(server=server, tables=tables, **fields)  # type: ignore[arg-type]


@pytest.fixture
def start_replay() -> Iterator[Callable[..., RunningReplay]]:
    """``start_replay(port=0, tables=TABLES, checkpoint_dir="", ...)``; every server is stopped at teardown."""
    servers: list[RunningReplay] = []

    def start(**fields: object) -> RunningReplay:
        server = RunningReplay(make_config(**fields))  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.alive:
            server.stop()


@pytest.fixture(scope="module")
def replay_server() -> Iterator[RunningReplay]:
    """One server with the TABLES above, shared by a test module (use the tables with care)."""
    server = RunningReplay(make_config())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stub(replay_server: RunningReplay) -> Iterator[replay_pb2_grpc.ReplayServiceStub]:
    """A raw stub on the module's server, for requests the client would never build."""
    channel = grpc.insecure_channel(replay_server.address, options=[("grpc.max_send_message_length", 256 << 20)])
    yield replay_pb2_grpc.ReplayServiceStub(channel)
    channel.close()


def _item(i: int, n: int = 1, t: int = 3) -> dict[str, np.ndarray]:
    """``n`` small items ``[t, n, ...]`` whose every value encodes its index ``i + j``."""
    ids = np.arange(i, i + n, dtype=np.int64)
    return {
        "id": np.broadcast_to(ids, (t, n)).copy(),
        "observation": (np.arange(t * n * 4).reshape(t, n, 4) + 1000 * ids[None, :, None]).astype(np.float32),
    }


def _assert_serves(stub: replay_pb2_grpc.ReplayServiceStub) -> None:
    """The server still answers: a fresh insert is acknowledged and Info works."""
    from herd.wire.codec import encode_map

    request = replay_pb2.InsertRequest(table="scratch", num_items=1)
    encode_map(_item(7), out=request.items)
    acks = list(stub.Insert(iter([request]), timeout=10))
    assert len(acks) == 1 and len(acks[0].keys) == 1
    info = stub.Info(replay_pb2.InfoRequest(tables=["scratch"]), timeout=10)
    assert info.tables[0].name == "scratch"


@pytest.fixture
def item() -> Callable[..., dict[str, np.ndarray]]:
    """``item(i, n=1, t=3)``: ``n`` small items ``[t, n, ...]`` whose values encode their index ``i + j``."""
    return _item


@pytest.fixture
def assert_serves() -> Callable[[replay_pb2_grpc.ReplayServiceStub], None]:
    """``assert_serves(stub)``: the server still acknowledges an insert and answers Info."""
    return _assert_serves
