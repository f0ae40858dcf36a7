"""Leases: one holder at a time, expiry hands over, only the holder renews or releases."""

from __future__ import annotations

import threading
import time

import pytest

from herd.coord import Coordinator, LeaseKeeper


@pytest.fixture
def coord(redis_url: str, run_id: str):
    with Coordinator(redis_url, run_id) as c:
        yield c


def wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def test_lease_is_exclusive_and_only_the_holder_renews_or_releases(coord: Coordinator) -> None:
    assert coord.lease_holder("learner") is None
    assert coord.acquire_lease("learner", "A", ttl=5)
    assert not coord.acquire_lease("learner", "B", ttl=5)
    assert not coord.acquire_lease("learner", "A", ttl=5)  # SET NX: not re-entrant
    assert coord.lease_holder("learner") == "A"
    assert not coord.renew_lease("learner", "B", ttl=5)
    assert coord.renew_lease("learner", "A", ttl=5)
    assert not coord.release_lease("learner", "B")
    assert coord.lease_holder("learner") == "A"
    assert coord.release_lease("learner", "A")
    assert not coord.release_lease("learner", "A")
    assert coord.acquire_lease("learner", "B", ttl=5)


def test_expired_lease_passes_to_the_next_holder(coord: Coordinator) -> None:
    assert coord.acquire_lease("learner", "A", ttl=0.3)
    assert not coord.acquire_lease("learner", "B", ttl=0.3)
    time.sleep(0.4)
    assert not coord.renew_lease("learner", "A", ttl=0.3)
    assert coord.acquire_lease("learner", "B", ttl=0.3)


def test_keeper_hands_over_on_close(coord: Coordinator) -> None:
    first = LeaseKeeper(coord, "learner", "L1", ttl=1.0, renew_every=0.1)
    assert first.wait_acquired(2.0) and first.held
    second = LeaseKeeper(coord, "learner", "L2", ttl=1.0, renew_every=0.1)
    time.sleep(1.2)  # longer than the ttl: renewals keep the first holder in place
    assert first.held and not second.held and not second.wait_acquired(0.1)
    first.close()
    assert not first.held
    assert second.wait_acquired(1.0) and coord.lease_holder("learner") == "L2"
    second.close()
    assert coord.lease_holder("learner") is None


def test_keeper_takes_over_an_expired_lease(coord: Coordinator) -> None:
    assert coord.acquire_lease("learner", "crashed", ttl=0.3)
    with LeaseKeeper(coord, "learner", "L2", ttl=1.0, renew_every=0.05) as keeper:
        assert not keeper.held
        assert keeper.wait_acquired(1.0)


def test_keeper_flags_loss_when_someone_else_holds_it(coord: Coordinator) -> None:
    with LeaseKeeper(coord, "learner", "L1", ttl=2.0, renew_every=0.05) as keeper:
        assert keeper.wait_acquired(1.0)
        coord.redis.set(coord.keys.lease("learner"), "intruder", px=5000)  # e.g. after a Redis failover
        assert wait_until(lambda: not keeper.held, timeout=0.5)
        time.sleep(0.2)
        assert not keeper.held and coord.lease_holder("learner") == "intruder"
    assert coord.lease_holder("learner") == "intruder"  # close() did not delete someone else's lease


def test_keeper_flags_loss_when_redis_is_down_and_recovers(private_redis, run_id: str) -> None:
    coord = Coordinator(private_redis.url, run_id, socket_timeout=0.5)
    keeper = LeaseKeeper(coord, "learner", "L1", ttl=1.0, renew_every=0.05)
    assert keeper.wait_acquired(1.0)
    private_redis.kill()
    assert wait_until(lambda: not keeper.held, timeout=0.5)
    private_redis.start()  # empty Redis: the keeper takes the free lease again
    assert keeper.wait_acquired(2.0)
    assert coord.lease_holder("learner") == "L1"
    keeper.close()
    coord.close()


def test_keeper_counts_the_lease_lost_after_ttl_when_renewals_hang(coord: Coordinator, monkeypatch) -> None:
    keeper = LeaseKeeper(coord, "learner", "L1", ttl=0.4, renew_every=0.05)
    assert keeper.wait_acquired(1.0)
    unblock = threading.Event()
    monkeypatch.setattr(coord, "renew_lease", lambda *args: unblock.wait(5.0))  # a Redis that stopped answering
    t0 = time.monotonic()
    assert wait_until(lambda: not keeper.held, timeout=1.0)
    assert time.monotonic() - t0 <= 0.45  # no later than the ttl after the last confirmed renewal
    unblock.set()
    keeper.close()


def test_keeper_rejects_bad_timing(coord: Coordinator) -> None:
    with pytest.raises(ValueError):
        LeaseKeeper(coord, "learner", "L", ttl=1.0, renew_every=1.0)
