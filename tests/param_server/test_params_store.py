"""ParameterStore: the in-process versioned store that the gRPC servicer wraps."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from herd.interfaces import StaleVersionError
from param_server.store import ParameterStore


def _w(value: float) -> dict[str, np.ndarray]:
    return {"w": np.full((2, 3), value, np.float32), "b": np.arange(3, dtype=np.int64)}


def test_versions_start_at_zero_and_must_increase():
    store = ParameterStore()
    store.publish("policy", 0, _w(0))
    store.publish("policy", 1, _w(1))
    store.publish("policy", 5, _w(5))  # gaps are fine
    assert store.versions() == {"policy": 5}
    for stale in (5, 4, 0):
        with pytest.raises(StaleVersionError, match="does not increase"):
            store.publish("policy", stale, _w(-1))
    assert store.fetch("policy").version == 5
    store.publish("other", 0, _w(0))  # versions are per name
    assert store.versions() == {"policy": 5, "other": 0}


def test_bad_name_and_version_are_value_errors():
    store = ParameterStore()
    with pytest.raises(ValueError, match="empty"):
        store.publish("", 0, _w(0))
    with pytest.raises(ValueError, match=">= 0"):
        store.publish("policy", -1, _w(0))
    assert store.versions() == {}


def test_fetch_semantics():
    store = ParameterStore()
    assert store.fetch("policy") is None  # nothing published
    store.publish("policy", 3, _w(3))
    assert store.fetch("policy").version == 3
    assert store.fetch("policy", min_version=3).version == 3
    assert store.fetch("policy", min_version=4) is None  # the caller is current
    assert store.fetch("unknown") is None
    np.testing.assert_array_equal(store.fetch("policy").tensors["w"], np.full((2, 3), 3, np.float32))


def test_published_arrays_are_copied_and_frozen():
    store = ParameterStore()
    weights = _w(1)
    store.publish("policy", 0, weights)
    weights["w"][:] = 99  # the learner keeps training its own arrays
    got = store.fetch("policy").tensors["w"]
    assert float(got[0, 0]) == 1.0
    with pytest.raises(ValueError):
        got[0, 0] = 2  # shared with every reader: read-only


def test_wait_for_wakes_on_publish_and_times_out():
    store = ParameterStore()
    t0 = time.monotonic()
    assert store.wait_for("policy", 0, timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04
    got = []
    waiter = threading.Thread(target=lambda: got.append(store.wait_for("policy", 2, timeout=5)))
    waiter.start()
    store.publish("policy", 1, _w(1))  # not enough
    time.sleep(0.05)
    assert not got
    store.publish("policy", 2, _w(2))
    waiter.join(5)
    assert got and got[0].version == 2
    assert store.wait_for("policy", 0, timeout=0).version == 2  # already there: no wait
