"""Fixtures: real parameter servers on loopback free ports, served by ``param_server.main.serve``."""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import pytest

from herd.options import ServerOptions
from param_server.config import ParamServerConfig
from param_server.main import serve


class RunningParams:
    """A server running ``serve`` in a thread; ``stop()`` shuts it down like SIGTERM would."""

    def __init__(self, config: ParamServerConfig) -> None:
        self._stop = threading.Event()
        ready: list[int] = []
        started = threading.Event()

        def on_ready(port: int) -> None:
            ready.append(port)
            started.set()

        self._errors: list[BaseException] = []

        def run() -> None:
            try:
                serve(config, stop_event=self._stop, on_ready=on_ready)
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self._errors.append(exc)
                started.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(10), "parameter server did not start"
        if self._errors:
            raise self._errors[0]
        self.port = ready[0]
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "parameter server did not stop"
        if self._errors:
            raise self._errors[0]


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
        if server._thread.is_alive():
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
