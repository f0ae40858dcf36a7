"""Fixtures shared by every test folder.

Redis: ``redis_server`` is one real ``redis-server`` per test session (see
:mod:`herd.testing.redis_server`); ``redis_url`` hands each test that server's
URL with the database flushed; ``run_id`` gives each test its own run namespace;
``private_redis`` is a server of the test's own, for tests that kill or restart it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from herd.testing.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, shared by the session (do not kill it)."""
    from herd.testing.redis_server import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis, emptied before the test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def run_id() -> str:
    """A run id no other test uses, so keys never collide."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server only this test uses: it may stop, kill or restart it."""
    from herd.testing.redis_server import RedisServer

    with RedisServer() as server:
        yield server
