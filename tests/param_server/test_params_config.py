"""ParamServerConfig: defaults are valid, and each bad value is refused naming its field."""

from __future__ import annotations

import pytest

from herd.options import ServerOptions
from param_server.config import GiB, MiB, ParamServerConfig


def test_defaults():
    config = ParamServerConfig()
    assert config.data_dir == "" and config.chunk_bytes == MiB and config.max_total_bytes == 2 * GiB
    assert config.server_threads > config.max_subscribers


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"chunk_bytes": 0}, "chunk_bytes"),
        ({"chunk_bytes": 40 * MiB}, "chunk_bytes"),  # half of the 64 MiB message limit at most
        ({"chunk_bytes": 1.5}, "chunk_bytes"),
        ({"chunk_bytes": True}, "chunk_bytes"),
        ({"max_total_bytes": 0}, "max_total_bytes"),
        ({"max_subscribers": -1}, "max_subscribers"),
        ({"data_dir": None}, "data_dir"),
        ({"server": "127.0.0.1:0"}, "server"),
        ({"coord": None}, "coord"),
    ],
)
def test_bad_values_name_their_field(fields, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        ParamServerConfig(**fields)


def test_chunk_limit_follows_the_message_limit():
    ParamServerConfig(server=ServerOptions(max_message_mb=4), chunk_bytes=2 * MiB)
    with pytest.raises(ValueError, match="chunk_bytes"):
        ParamServerConfig(server=ServerOptions(max_message_mb=4), chunk_bytes=3 * MiB)
