"""Fixtures: real parameter servers on loopback free ports, served by ``param_server.main.serve``."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from herd.options import ServerOptions
from herd.testing.servers import ServiceThread
from param_server.config import ParamServerConfig
from param_server.main import serve


class RunningParams(ServiceThread):
    """A parameter server running ``serve`` in a thread; ``stop()`` shuts it down like SIGTERM would."""

    def __init__(self, config: ParamServerConfig) -> None:
        super().__init__(serve, config, name="parameter server", stop_timeout=10.0)


@pytest.fixture
def start_params() -> Iterator[Callable[..., RunningParams]]:
    """``start_params(data_dir="", **config)`` starts a server; every one is stopped at teardown."""
    servers: list[RunningParams] = []

    def start(*, port: int = 0, **fields: object) -> RunningParams:
        config = ParamServerConfig(server=ServerOptions(port=port, grace_seconds=0.5), **fields)  # type: ignore[arg-type]
        server = RunningParams(config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.alive:
            server.stop()


SMALL_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small_params() -> Iterator[RunningParams]:
    """One server per module with ``max_total_bytes`` = :data:`SMALL_LIMIT` (for bad-input tests)."""
    server = RunningParams(
        ParamServerConfig(server=ServerOptions(grace_seconds=0.5), max_total_bytes=SMALL_LIMIT)
    )
    yield server
    server.stop()
