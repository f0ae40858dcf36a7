"""Redis restarted empty: ``herd up``'s keeper brings it back and the run's state with it."""

import os
import signal
import time

import pytest

from herd.coord import Coordinator, LeaseKeeper, Reporter
from herd.coord.server import LocalRedis
from herd.launch.redis_keeper import RedisKeeper

CONFIG = {"env": "gym:CartPole-v1", "steps": 1000}


@pytest.fixture
def local_redis():
    server = LocalRedis().start()
    yield server
    server.close()


def _poll_until(keeper, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counters = keeper.poll()
        if counters is not None and predicate(counters):
            return counters
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout}s; last seen {keeper.seen}")


def test_keeper_restarts_a_killed_redis_on_its_port_and_reasserts_the_run_state(local_redis, run_id):
    port, pid = local_redis.port, local_redis.pid
    with Coordinator(local_redis.url, run_id) as coord:
        keeper = RedisKeeper(coord, CONFIG, local_redis, min_backoff=0.05)
        keeper.start({"env_steps": 100})
        coord.incr(env_steps=400, learner_steps=7)
        assert keeper.poll() == {"env_steps": 500, "learner_steps": 7}

        os.kill(pid, signal.SIGKILL)  # as `kill -9` from outside
        counters = _poll_until(keeper, lambda c: True)
        assert local_redis.port == port and local_redis.pid != pid and keeper.restarts == 1
        assert counters["env_steps"] >= 500 and counters["learner_steps"] >= 7
        assert coord.get_config() == CONFIG  # what herd up wrote is back in Redis itself
        assert coord.counters() == {"env_steps": 500, "learner_steps": 7}
        # Increments made after the restart are kept, not overwritten by the re-assertion.
        coord.incr(env_steps=20)
        assert keeper.poll()["env_steps"] == 520


def test_keeper_reasserts_after_an_external_redis_lost_its_data(local_redis, run_id):
    with Coordinator(local_redis.url, run_id) as coord:
        keeper = RedisKeeper(coord, CONFIG, redis=None)  # --redis-url: not ours to restart
        keeper.start()
        coord.incr(env_steps=300, episodes=4)
        assert keeper.poll()["env_steps"] == 300
        coord.redis.flushall()
        coord.incr(env_steps=10)  # a flush lands first (a max-merge keeps the larger value, never less)
        assert keeper.poll() == {"env_steps": 300, "episodes": 4}
        assert coord.counters() == {"env_steps": 300, "episodes": 4}
        assert coord.get_config() == CONFIG and keeper.reasserts == 1 and keeper.restarts == 0


def test_keeper_reports_none_while_an_external_redis_is_down(local_redis, run_id):
    with Coordinator(local_redis.url, run_id, socket_timeout=0.5) as coord:
        keeper = RedisKeeper(coord, CONFIG, redis=None)
        keeper.start()
        local_redis.kill()
        assert keeper.poll() is None
        local_redis.start()
        assert _poll_until(keeper, lambda c: True) == {}
        assert coord.get_config() == CONFIG


def test_reporter_puts_back_counters_redis_lost(local_redis, run_id):
    with Coordinator(local_redis.url, run_id) as coord:
        reporter = Reporter(coord, interval=60.0)  # flushed by hand
        try:
            reporter.add(env_steps=1000, episodes=3)
            assert reporter.flush()
            local_redis.restart()  # back empty on the same port
            reporter.add(env_steps=50)
            assert reporter.flush()
            assert coord.counters()["env_steps"] == 1050  # not 50
            reporter.add(env_steps=5)
            assert reporter.flush() and coord.counters()["env_steps"] == 1055
        finally:
            reporter.close()


def test_lease_comes_back_to_its_learner_after_redis_restarts_empty(local_redis, run_id):
    with Coordinator(local_redis.url, run_id, socket_timeout=0.5) as coord:
        keeper = LeaseKeeper(coord, "learner", "L1", ttl=2.0, renew_every=0.2)
        try:
            assert keeper.wait_acquired(5.0)
            local_redis.restart()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and coord.lease_holder("learner") != "L1":
                time.sleep(0.05)
            assert coord.lease_holder("learner") == "L1" and keeper.held
        finally:
            keeper.close()
