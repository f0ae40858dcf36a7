"""AsyncPublisher: returns at once, sends the newest version, survives a failing server, flushes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from herd.interfaces import StaleVersionError
from learner_service.publisher import AsyncPublisher
from param_server.store import ParameterStore


class GatedStore(ParameterStore):
    """A real store whose publish waits for a gate, and can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.calls: list[int] = []
        self.fail_next = 0

    def publish(self, name, version, tensors) -> None:
        self.gate.wait(10)
        self.calls.append(version)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("params server unreachable")
        super().publish(name, version, tensors)


def w(x: float) -> dict[str, np.ndarray]:
    return {"w": np.full(3, x, np.float32)}


def test_publish_returns_before_the_server_answers_and_flush_waits() -> None:
    store = GatedStore()
    pub = AsyncPublisher(store)
    pub.publish("p", 0, w(0))  # the server is stalled: this must not block
    assert not pub.flush(timeout=0.1)
    store.gate.set()
    assert pub.flush(timeout=5)
    assert store.fetch("p").version == 0
    pub.close()


def test_only_the_newest_pending_version_is_sent() -> None:
    store = GatedStore()
    pub = AsyncPublisher(store)
    pub.publish("p", 0, w(0))
    while not pub._busy:  # version 0 is in flight, stuck at the gate
        threading.Event().wait(0.001)
    for v in range(1, 6):
        pub.publish("p", v, w(v))
    store.gate.set()
    assert pub.flush(timeout=5)
    assert store.calls == [0, 5]
    assert pub.superseded == 4
    np.testing.assert_array_equal(store.fetch("p").tensors["w"], w(5)["w"])
    pub.close()


def test_a_failed_publish_is_retried_unless_superseded() -> None:
    store = GatedStore()
    store.gate.set()
    store.fail_next = 2
    pub = AsyncPublisher(store, retry_seconds=0.01)
    pub.publish("p", 7, w(7))
    assert pub.flush(timeout=5)
    assert store.calls == [7, 7, 7] and pub.failures == 2
    assert store.fetch("p").version == 7
    pub.close()


def test_queued_versions_must_increase() -> None:
    store = GatedStore()
    pub = AsyncPublisher(store)
    pub.publish("p", 3, w(3))
    pub.publish("p", 4, w(4))
    with pytest.raises(StaleVersionError):
        pub.publish("p", 4, w(4))
    store.gate.set()
    pub.close()
    with pytest.raises(RuntimeError, match="closed"):
        pub.publish("p", 9, w(9))


def test_close_sends_what_is_queued() -> None:
    store = GatedStore()
    store.gate.set()
    pub = AsyncPublisher(store)
    pub.publish("a", 1, w(1))
    pub.publish("b", 2, w(2))
    pub.close()
    assert store.fetch("a").version == 1 and store.fetch("b").version == 2
