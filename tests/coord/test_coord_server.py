"""LocalRedis (the test/`herd up` server) and password-protected Redis."""

from __future__ import annotations

import pytest
import redis
import redis.exceptions as rexc

from herd.coord import Coordinator
from herd.coord.coordinator import redact
from herd.testing.redis_server import RedisServer, find_redis_server


def test_local_redis_lifecycle() -> None:
    with RedisServer() as server:
        assert server.running and server.pid and server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        port = server.port
        server.restart()
        assert server.port == port and server.running
        assert client.get("k") is None  # fresh data
        server.stop()
        assert not server.running
        with pytest.raises(rexc.ConnectionError):
            client.ping()
        server.start()
        assert client.ping()
        client.close()
    assert not server.running


def test_local_redis_writes_its_log_where_asked(tmp_path) -> None:
    log_path = tmp_path / "logs" / "redis.log"
    with RedisServer(log_path=str(log_path)) as server:
        assert server.alive()
        server.kill()
        assert not server.alive()
        server.restart()  # also brings back a dead server
        assert server.alive()
    assert "Ready to accept connections" in log_path.read_text()


def test_find_redis_server_error_says_make_setup(monkeypatch) -> None:
    assert find_redis_server()
    monkeypatch.delenv("HERD_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match="make setup"):
        find_redis_server()


def test_password_protected_redis(run_id: str) -> None:
    password = "s3cr:t/@x"  # URL-special characters are quoted in .url
    with RedisServer(password=password) as server:
        assert password not in server.url and "@127.0.0.1" in server.url
        with Coordinator(server.url, run_id) as coord:
            assert coord.ping()
            assert password not in coord.url and "***" in coord.url
            with coord.register("replay", "r0", "h:1"):
                assert coord.discover("replay", timeout=1).grpc == "h:1"
        no_password = f"redis://127.0.0.1:{server.port}/0"
        wrong = f"redis://:nope@127.0.0.1:{server.port}/0"
        for url in (no_password, wrong):
            with Coordinator(url, run_id) as coord:
                with pytest.raises(rexc.AuthenticationError, match=r"refused.*redis://:PASSWORD@") as err:
                    coord.ping()
                assert "nope" not in str(err.value) and str(server.port) in str(err.value)
                with pytest.raises(rexc.AuthenticationError):
                    coord.discover("replay", timeout=5)  # fails at once, does not wait
                with pytest.raises(rexc.AuthenticationError):
                    coord.register("replay", "r0", "h:1")


def test_redact() -> None:
    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact("rediss://user:pw@h:1/0") == "rediss://user:***@h:1/0"
    assert redact("redis://h:1/0") == "redis://h:1/0"


def test_empty_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        Coordinator("", "r")


def test_tls_url_uses_an_ssl_connection() -> None:
    with Coordinator("rediss://:pw@redis.example:6380/2", "r") as coord:
        pool = coord.redis.connection_pool
        assert pool.connection_class is redis.SSLConnection
        assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["password"] == "pw"
        assert coord.url == "rediss://:***@redis.example:6380/2"
