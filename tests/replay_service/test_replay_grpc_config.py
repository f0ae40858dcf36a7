"""ReplayServiceConfig validation and the client's plumbing that needs no server."""

from __future__ import annotations

import grpc
import pytest

from herd.interfaces import RateLimitTimeout
from herd.options import ServerOptions
from herd.wire.status import NotFoundError, ResourceExhaustedError, UnavailableError, status_for
from replay_service.config import ReplayServiceConfig, TableConfig
from replay_service.reconnect import Backoff, error_from_rpc


def test_defaults_are_one_impala_queue():
    config = ReplayServiceConfig()
    assert config.tables == (TableConfig.queue("trajectories", 64),)
    assert (config.checkpoint_dir, config.checkpoint_every_seconds, config.seed) == ("", 0.0, 0)
    assert config.table_names() == ["trajectories"]
    assert ReplayServiceConfig(tables=[TableConfig.queue("a", 2)]).tables == (TableConfig.queue("a", 2),)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"tables": ()}, "tables"),
        ({"tables": (TableConfig.queue("a", 2), TableConfig.queue("a", 3))}, "tables[1].name"),
        ({"tables": ("a",)}, "tables[0]"),
        ({"tables": (TableConfig.queue("a/b", 2),)}, "tables[0].name"),
        ({"tables": (TableConfig.queue("..", 2),)}, "tables[0].name"),
        ({"checkpoint_every_seconds": -1.0}, "checkpoint_every_seconds"),
        ({"checkpoint_every_seconds": float("nan"), "checkpoint_dir": "d"}, "checkpoint_every_seconds"),
        ({"checkpoint_every_seconds": 5.0}, "checkpoint_every_seconds"),  # periodic needs a directory
        ({"checkpoint_dir": None}, "checkpoint_dir"),
        ({"seed": -1}, "seed"),
        ({"server": "localhost:1"}, "server"),
        ({"coord": {}}, "coord"),
    ],
)
def test_invalid_configs_name_the_field(fields, field):
    with pytest.raises(ValueError) as e:
        ReplayServiceConfig(**fields)
    assert str(e.value).startswith(field)


def test_config_is_frozen():
    config = ReplayServiceConfig(server=ServerOptions(port=1234), checkpoint_dir="d", checkpoint_every_seconds=1)
    with pytest.raises(AttributeError):
        config.seed = 3  # type: ignore[misc]


def test_backoff_doubles_to_its_cap_with_jitter():
    backoff = Backoff(0.1, 5.0)
    waits = [backoff.next() for _ in range(10)]
    bounds = [min(0.1 * 2**i, 5.0) for i in range(10)]
    assert all(b / 2 <= w <= b for w, b in zip(waits, bounds))
    backoff.reset()
    assert backoff.next() <= 0.1


class _Error(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "why"


@pytest.mark.parametrize(
    "code, cls",
    [
        (grpc.StatusCode.INVALID_ARGUMENT, ValueError),
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, RateLimitTimeout),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.PERMISSION_DENIED, RuntimeError),
    ],
)
def test_statuses_become_the_exceptions_the_table_raises(code, cls):
    error = error_from_rpc(_Error(code), "insert")
    assert type(error) is cls and "insert: why" in str(error) and error.__cause__ is not None


def test_unavailable_error_maps_to_unavailable():
    assert status_for(UnavailableError("shutting down")) == grpc.StatusCode.UNAVAILABLE
