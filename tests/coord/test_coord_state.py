"""Run state in Redis: counters, stop flag, config, episodes stream, key layout and run isolation."""

from __future__ import annotations

import threading
import time

import pytest

from herd.coord import Coordinator, LeaseKeeper, RunKeys
from herd.types import EpisodeRecord


@pytest.fixture
def coord(redis_url: str, run_id: str):
    with Coordinator(redis_url, run_id) as c:
        yield c


def test_keys_live_under_the_run_prefix() -> None:
    keys = RunKeys("r1")
    assert keys.config == "herd:r1:config" and keys.counters == "herd:r1:counters"
    assert keys.stop == "herd:r1:stop" and keys.episodes == "herd:r1:episodes"
    assert keys.svc("actor", "a-1") == "herd:r1:svc:actor:a-1" and keys.lease("learner") == "herd:r1:lease:learner"
    assert keys.svc_pattern() == "herd:r1:svc:*:*" and keys.svc_pattern("replay") == "herd:r1:svc:replay:*"
    for bad in ("", "a b", "a:b", "a*", "{x}"):
        with pytest.raises(ValueError):
            RunKeys(bad)
    with pytest.raises(ValueError):
        keys.svc("actors", "a")
    with pytest.raises(ValueError):
        keys.svc("actor", "a*")


def test_counters_incr_is_atomic_and_returns_new_values(coord: Coordinator) -> None:
    assert coord.counters() == {} and coord.incr() == {}
    assert coord.incr(env_steps=5, episodes=1) == {"env_steps": 5, "episodes": 1}
    assert coord.incr(env_steps=5) == {"env_steps": 10}

    def bump() -> None:
        for _ in range(50):
            coord.incr(env_steps=1, episodes=2)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert coord.counters() == {"env_steps": 210, "episodes": 401}


def test_set_counters_max_only_raises(coord: Coordinator) -> None:
    coord.incr(env_steps=10)
    assert coord.set_counters_max(env_steps=3, learner_steps=100) == {"env_steps": 10, "learner_steps": 100}
    assert coord.set_counters_max(learner_steps=250) == {"learner_steps": 250}
    big = 3 * 10**15  # beyond Lua's %.14g formatting, still exact in a double
    assert coord.set_counters_max(env_steps=big) == {"env_steps": big}
    assert coord.counters() == {"env_steps": big, "learner_steps": 250}
    assert coord.set_counters_max() == {}


def test_stop_flag(coord: Coordinator) -> None:
    assert not coord.should_stop()
    coord.request_stop()
    assert coord.should_stop()
    coord.clear_stop()
    assert not coord.should_stop()


def test_config_round_trip(coord: Coordinator) -> None:
    assert coord.get_config() is None
    config = {"agent": {"learning_rate": 6e-4, "unroll_length": 20}, "env": "gym:CartPole-v1", "tags": [1, "x"]}
    coord.set_config(config)
    assert coord.get_config() == config


def episodes(n: int, start: int = 0) -> list[EpisodeRecord]:
    return [EpisodeRecord(env_steps=100 * (i + 1), episode_return=0.1 + i, episode_length=10 + i,
                          task="CartPole-v1", actor_id=f"a{i % 2}") for i in range(start, start + n)]  # fmt: skip


def test_episodes_stream_round_trip(coord: Coordinator) -> None:
    assert coord.read_episodes() == ([], "0-0")
    coord.report_episodes(episodes(3))
    coord.report_episodes([])
    got, last = coord.read_episodes(count=2)
    assert got == episodes(2)
    got, last = coord.read_episodes(after_id=last)
    assert got == episodes(1, start=2)
    assert coord.read_episodes(after_id=last) == ([], last)


def test_read_episodes_blocks_until_one_arrives(coord: Coordinator) -> None:
    t0 = time.monotonic()
    assert coord.read_episodes(after_id="$", block_ms=200)[0] == []
    assert 0.15 <= time.monotonic() - t0 < 1.0
    _, last = coord.read_episodes()
    timer = threading.Timer(0.1, coord.report_episodes, args=(episodes(1),))
    timer.start()
    got, _ = coord.read_episodes(after_id=last, block_ms=3000)
    timer.join()
    assert got == episodes(1)


def test_runs_are_isolated(redis_url: str) -> None:
    with Coordinator(redis_url, "run-a") as a, Coordinator(redis_url, "run-b") as b:
        reg = a.register("replay", "r0", "h:1")
        a.incr(env_steps=7)
        a.request_stop()
        a.set_config({"x": 1})
        a.report_episodes(episodes(2))
        assert a.acquire_lease("learner", "L-a", ttl=5)
        keeper = LeaseKeeper(b, "learner", "L-b", ttl=1.0, renew_every=0.1)
        assert keeper.wait_acquired(2.0)  # run-a's lease does not block run-b
        assert b.services() == [] and b.counters() == {} and not b.should_stop()
        assert b.get_config() is None and b.read_episodes() == ([], "0-0")
        assert b.lease_holder("learner") == "L-b" and a.lease_holder("learner") == "L-a"
        keeper.close()
        everything = set(a.redis.scan_iter(match="*"))  # the database was flushed before the test
        assert everything == set(a.redis.scan_iter(match="herd:run-a:*")) | set(b.redis.scan_iter(match="herd:run-b:*"))
        reg.close()
