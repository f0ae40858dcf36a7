"""``herd health`` (the containers' health probe) against a real gRPC server, and
``herd serve actor --actor-index auto`` (scaled actor replicas) against a real Redis."""

import subprocess
import sys

import pytest

from herd.cli import build_parser, main
from herd.run_config import load_run_config
from herd.wire.server import start_server


@pytest.fixture
def server():
    running = start_server(lambda s: None, ["herd.v1.Test"], port=0)
    yield running
    running.stop(0)


def test_health_exits_zero_only_while_serving(server, capsys):
    address = f"127.0.0.1:{server.port}"
    assert main(["health", "--address", address]) == 0
    assert main(["health", "--address", address, "--service", "herd.v1.Test"]) == 0
    assert main(["health", "--address", address, "--service", "herd.v1.NoSuch"]) == 1
    server.set_serving(False)
    capsys.readouterr()
    assert main(["health", "--address", address]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_health_of_an_unreachable_address_fails(server, capsys):
    port = server.port
    server.stop(0)
    assert main(["health", "--address", f"127.0.0.1:{port}", "--timeout", "0.5"]) == 1
    assert "UNKNOWN" in capsys.readouterr().err


def test_health_defaults_to_herd_port(server, monkeypatch):
    monkeypatch.setenv("HERD_PORT", str(server.port))
    assert main(["health"]) == 0
    monkeypatch.setenv("HERD_PORT", "1")  # nothing listens on port 1
    assert main(["health", "--timeout", "0.5"]) == 1


def test_health_exit_code_of_the_installed_command(server):
    """What a Dockerfile HEALTHCHECK sees: the process exit code."""
    ok = subprocess.run([sys.executable, "-m", "herd.cli", "health", "--address", f"127.0.0.1:{server.port}"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    server.set_serving(False)
    bad = subprocess.run([sys.executable, "-m", "herd.cli", "health", "--address", f"127.0.0.1:{server.port}"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "NOT_SERVING" in bad.stderr


def _actor_config(argv):
    from herd.cli import _service_config

    args = build_parser().parse_args(["serve", "actor", *argv])
    run, _ = load_run_config(None, None, None)
    return _service_config(args, run)


def test_auto_actor_index_claims_distinct_indices(redis_url, run_id):
    flags = ["--actor-index", "auto", "--redis-url", redis_url, "--run-id", run_id]
    assert [_actor_config(flags).actor_index for _ in range(3)] == [0, 1, 2]
    other = ["--actor-index", "auto", "--redis-url", redis_url, "--run-id", run_id + "-b"]
    assert _actor_config(other).actor_index == 0  # counted per run
    assert _actor_config(["--actor-index", "7"]).actor_index == 7


def test_auto_actor_index_needs_redis():
    with pytest.raises(ValueError, match="needs --redis-url"):
        _actor_config(["--actor-index", "auto"])
    with pytest.raises(ValueError, match="cannot claim an index from Redis at redis://:\\*\\*\\*@127.0.0.1:1/0"):
        _actor_config(["--actor-index", "auto", "--redis-url", "redis://:secret@127.0.0.1:1/0"])


def test_auto_advertise_host_is_the_host_name():
    import socket

    assert _actor_config(["--advertise-host", "auto", "--host", "0.0.0.0"]).server.address(50051) == (
        f"{socket.gethostname()}:50051")
    assert _actor_config(["--host", "0.0.0.0"]).server.address(50051) == "127.0.0.1:50051"
