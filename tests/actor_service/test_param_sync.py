"""BackgroundFetcher: fetch never waits on the network, yet newer versions arrive."""

from __future__ import annotations

import threading
import time

import numpy as np

from actor_service.param_sync import BackgroundFetcher
from param_server.store import ParameterStore


class SlowStore(ParameterStore):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.fail_next = 0

    def fetch(self, name, min_version=0):
        self.gate.wait(10)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("params server unreachable")
        return super().fetch(name, min_version)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_fetch_answers_at_once_and_the_next_call_sees_the_new_version() -> None:
    store = SlowStore()
    store.publish("policy", 0, {"w": np.zeros(2, np.float32)})
    fetcher = BackgroundFetcher(store, "policy")
    t = time.monotonic()
    assert fetcher.fetch("policy", 0) is None  # the server is stalled: nothing yet, no wait
    assert time.monotonic() - t < 0.5
    store.gate.set()
    assert wait_for(lambda: fetcher.fetch("policy", 0) is not None)
    assert fetcher.fetch("policy", 1) is None  # nothing newer than what the caller has
    store.publish("policy", 3, {"w": np.ones(2, np.float32)})
    assert wait_for(lambda: fetcher.fetch("policy", 1) is not None)
    params = fetcher.fetch("policy", 1)
    assert params.version == 3
    np.testing.assert_array_equal(params.tensors["w"], np.ones(2))
    fetcher.close()


def test_failures_are_retried_and_other_names_go_straight_through() -> None:
    store = SlowStore()
    store.gate.set()
    store.fail_next = 2
    store.publish("policy", 5, {"w": np.zeros(1, np.float32)})
    store.publish("other", 1, {"w": np.zeros(1, np.float32)})
    fetcher = BackgroundFetcher(store, "policy", retry_seconds=0.01)
    fetcher.fetch("policy", 0)
    assert wait_for(lambda: fetcher.fetch("policy", 0) is not None)
    assert fetcher.failures == 2
    assert fetcher.fetch("other", 0).version == 1
    fetcher.close()
    assert not fetcher._thread.is_alive()


class TimedStore(ParameterStore):
    """Records when each fetch reaches the server."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched_at: list[float] = []

    def fetch(self, name, min_version=0):
        self.fetched_at.append(time.monotonic())
        return super().fetch(name, min_version)


def test_fetches_are_timed_to_land_just_before_the_next_question() -> None:
    store = TimedStore()
    store.publish("policy", 0, {"w": np.zeros(1, np.float32)})
    fetcher = BackgroundFetcher(store, "policy")
    assert wait_for(lambda: fetcher.fetch("policy", 0) is not None)
    period = 0.2
    asked = []
    for _ in range(6):  # the actor asks once per unroll, every 200 ms
        time.sleep(period)
        asked.append(time.monotonic())
        fetcher.fetch("policy", 1)
    time.sleep(period)
    fetcher.close()
    # Once the rhythm is known the fetch after a question waits most of the period, so the
    # weights the next question gets are a few ms old, not a whole unroll.
    last_question, last_fetch = asked[-1], store.fetched_at[-1]
    assert last_fetch - last_question > 0.5 * period


def test_without_just_in_time_the_fetch_starts_at_once() -> None:
    store = TimedStore()
    store.publish("policy", 0, {"w": np.zeros(1, np.float32)})
    fetcher = BackgroundFetcher(store, "policy", just_in_time=False)
    assert wait_for(lambda: fetcher.fetch("policy", 0) is not None)
    for _ in range(4):
        time.sleep(0.2)
        t = time.monotonic()
        fetcher.fetch("policy", 1)
    assert wait_for(lambda: store.fetched_at[-1] >= t)
    assert store.fetched_at[-1] - t < 0.1  # not held back to the next question, ~0.2 s away
    fetcher.close()
