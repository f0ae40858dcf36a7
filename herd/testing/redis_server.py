"""A real ``redis-server`` for tests: re-exports :mod:`herd.coord.server`.

Most tests use the ``redis_server`` / ``redis_url`` fixtures of ``tests/conftest.py``;
tests that kill or restart Redis start their own ``RedisServer``.
"""

from __future__ import annotations

from herd.coord.server import LocalRedis, find_redis_server, free_port

RedisServer = LocalRedis

__all__ = ["LocalRedis", "RedisServer", "find_redis_server", "free_port"]
