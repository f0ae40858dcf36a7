"""Selectors: deterministic orders, sampling frequencies against p^α / Σ p^α, the sum tree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from replay_service.selectors import (
    Fifo,
    ItemSelector,
    Lifo,
    MaxHeap,
    MinHeap,
    Prioritized,
    Uniform,
    check_priority,
    make_selector,
    validate_priorities,
)
from replay_service.sum_tree import SumTree


def drain(sel: ItemSelector) -> list[int]:
    """Selects and deletes until empty: the order the selector imposes."""
    order = []
    while len(sel):
        key, prob = sel.select()
        assert prob == 1.0
        order.append(key)
        sel.delete(key)
    return order


def expected_probs(priorities: list[float], alpha: float) -> np.ndarray:
    """The definition, computed independently (Reverb: priority 0 has weight 0, even for α = 0)."""
    w = np.array([0.0 if p == 0 else p**alpha for p in priorities])
    return w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))


def assert_frequencies(counts: np.ndarray, probs: np.ndarray, n: int) -> None:
    """Each count within 5 standard deviations of n * p (items of probability 0 never drawn)."""
    for i, (c, p) in enumerate(zip(counts, probs)):
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(c - n * p) <= 5 * sigma + 1e-9, (i, c, n * p, sigma)


def test_fifo_and_lifo_order_ignores_priorities_and_survives_middle_deletes() -> None:
    keys, prios = [5, 3, 9, 1, 7], [0.1, 9.0, 2.0, 0.0, 4.0]
    for cls, expected in ((Fifo, [5, 9, 1, 7]), (Lifo, [7, 1, 9, 5])):
        sel = cls()
        for k, p in zip(keys, prios):
            sel.insert(k, p)
        sel.update(9, 100.0)
        sel.delete(3)
        assert len(sel) == 4
        assert drain(sel) == expected


@pytest.mark.parametrize("cls, sign", [(MaxHeap, -1), (MinHeap, 1)])
def test_heaps_order_by_priority_ties_by_arrival(cls: type[ItemSelector], sign: int) -> None:
    sel = cls()
    prios = {1: 2.0, 2: 5.0, 3: 2.0, 4: 0.0, 5: 5.0, 6: 3.0}
    for k, p in prios.items():
        sel.insert(k, p)
    want = sorted(prios, key=lambda k: (sign * prios[k], k))
    assert drain(sel) == want


def test_heap_update_moves_item_and_counts_as_latest_arrival_for_ties() -> None:
    sel = MaxHeap()
    for k in (1, 2, 3):
        sel.insert(k, 1.0)
    sel.update(1, 1.0)  # same priority, but now the most recent: Reverb breaks ties by update order
    sel.update(3, 4.0)
    assert drain(sel) == [3, 2, 1]


@pytest.mark.parametrize("cls", [MaxHeap, MinHeap])
def test_heap_matches_reference_model_under_random_operations(cls: type[ItemSelector]) -> None:
    rng = np.random.default_rng(7)
    sign = -1.0 if cls is MaxHeap else 1.0
    sel, counter, next_key = cls(), 0, 0
    model: dict[int, tuple[float, int]] = {}  # key -> (sign * priority, arrival)
    for _ in range(3000):
        op = rng.integers(4) if model else 0
        if op <= 1:
            p = float(rng.integers(5))  # few distinct values: many ties
            sel.insert(next_key, p)
            model[next_key] = (sign * p, counter)
            next_key, counter = next_key + 1, counter + 1
        elif op == 2:
            k = list(model)[rng.integers(len(model))]
            p = float(rng.integers(5))
            sel.update(k, p)
            model[k], counter = (sign * p, counter), counter + 1
        else:
            k = list(model)[rng.integers(len(model))]
            sel.delete(k)
            del model[k]
        assert len(sel) == len(model)
        if model:
            assert sel.select()[0] == min(model, key=model.__getitem__)


def test_uniform_frequencies_and_probabilities() -> None:
    sel = Uniform(np.random.default_rng(1))
    for k in range(10):
        sel.insert(k, float(k))  # priorities are ignored
    sel.delete(4)
    keys = [k for k in range(10) if k != 4]
    n = 45_000
    counts = dict.fromkeys(keys, 0)
    for _ in range(n):
        key, prob = sel.select()
        assert prob == 1 / 9
        counts[key] += 1
    assert_frequencies(np.array([counts[k] for k in keys]), np.full(9, 1 / 9), n)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
def test_prioritized_frequencies_and_probabilities_follow_the_definition(alpha: float) -> None:
    priorities = [0.0, 0.5, 1.0, 2.0, 3.5, 7.0, 10.0, 0.1]
    sel = Prioritized(alpha, rng=np.random.default_rng(2))
    for k, p in enumerate(priorities):
        sel.insert(k, p)
    want = expected_probs(priorities, alpha)
    n = 40_000
    counts = np.zeros(len(priorities), dtype=np.int64)
    for _ in range(n):
        key, prob = sel.select()
        assert prob == pytest.approx(want[key], rel=1e-12)
        counts[key] += 1
    assert counts[0] == 0  # priority 0 is never sampled
    assert_frequencies(counts, want, n)


def test_prioritized_tracks_updates_and_deletes() -> None:
    rng = np.random.default_rng(3)
    sel = Prioritized(0.7, rng=np.random.default_rng(4))
    live: dict[int, float] = {}
    for k in range(300):
        live[k] = float(rng.uniform(0, 5))
        sel.insert(k, live[k])
    for _ in range(500):
        k = int(rng.choice(list(live)))
        if rng.random() < 0.5:
            sel.delete(k)
            del live[k]
        else:
            live[k] = float(rng.uniform(0, 5))
            sel.update(k, live[k])
        key, prob = sel.select()
        keys = list(live)
        want = expected_probs([live[x] for x in keys], 0.7)
        assert prob == pytest.approx(want[keys.index(key)], rel=1e-9)


def test_prioritized_all_zero_priorities_fall_back_to_uniform() -> None:
    sel = Prioritized(1.0)
    for k in range(4):
        sel.insert(k, 0.0)
    assert {sel.select()[1] for _ in range(20)} == {0.25}
    sel.update(2, 3.0)
    assert all(sel.select() == (2, 1.0) for _ in range(20))


def test_random_selectors_are_reproducible_from_their_generator() -> None:
    def run(seed: int) -> list[int]:
        sel = Prioritized(0.5, rng=np.random.default_rng(seed))
        for k in range(50):
            sel.insert(k, k + 1.0)
        return [sel.select()[0] for _ in range(100)]

    assert run(11) == run(11) != run(12)


@pytest.mark.parametrize("name", ["fifo", "lifo", "uniform", "prioritized", "max_heap", "min_heap"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "high"])
def test_invalid_priorities_raise_value_error(name: str, bad: float) -> None:
    sel = make_selector(name, priority_exponent=0.5)
    with pytest.raises(ValueError, match="priority"):
        sel.insert(1, bad)
    assert len(sel) == 0
    sel.insert(1, 1.0)
    with pytest.raises(ValueError, match="priority"):
        sel.update(1, bad)


@pytest.mark.parametrize("name", ["fifo", "lifo", "uniform", "prioritized", "max_heap", "min_heap"])
def test_selector_contract_errors(name: str) -> None:
    sel = make_selector(name, priority_exponent=1.0)
    with pytest.raises(IndexError):
        sel.select()
    sel.insert(1, 1.0)
    with pytest.raises(ValueError, match="already"):
        sel.insert(1, 1.0)
    with pytest.raises(KeyError):
        sel.update(2, 1.0)
    with pytest.raises(KeyError):
        sel.delete(2)
    assert make_selector(**sel.spec()).spec() == sel.spec()


def test_priority_validation_helpers() -> None:
    assert check_priority(2) == 2.0
    assert validate_priorities(None, 3) == [1.0, 1.0, 1.0]
    assert validate_priorities(np.array([0.0, 2.5]), 2) == [0.0, 2.5]
    with pytest.raises(ValueError, match=r"priorities: .* at index 1"):
        validate_priorities([1.0, float("nan")], 2)
    with pytest.raises(ValueError, match="priorities: expected 3 values"):
        validate_priorities([1.0], 3)
    with pytest.raises(ValueError, match="unknown name"):
        make_selector("random")
    with pytest.raises(ValueError, match="priority_exponent"):
        make_selector("prioritized")
    with pytest.raises(ValueError, match="priority_exponent"):
        Prioritized(-0.5)
    with pytest.raises(ValueError, match="overflow"):
        Prioritized(2.0).insert(1, 1e200)


def test_sum_tree_matches_brute_force_under_random_operations() -> None:
    rng = np.random.default_rng(5)
    tree = SumTree(capacity=4)  # small, so it grows several times
    weights = np.zeros(0)
    for step in range(4000):
        i = int(rng.integers(len(weights) + 2))
        w = 0.0 if rng.random() < 0.2 else float(rng.exponential(3.0))
        if i >= len(weights):
            weights = np.concatenate([weights, np.zeros(i + 1 - len(weights))])
        weights[i] = w
        tree.set(i, w)
        if step % 50 == 0 or step > 3900:
            assert tree.capacity >= len(weights)
            assert tree.total() == pytest.approx(weights.sum(), rel=1e-12, abs=1e-12)
            assert [tree.get(j) for j in range(len(weights))] == weights.tolist()
            if weights.sum() > 0:
                cum = np.cumsum(weights)
                for target in rng.uniform(0, weights.sum(), size=20):
                    want = int(np.searchsorted(cum, target, side="right"))
                    assert tree.find(float(target)) == want
                for target in (0.0, tree.total(), tree.total() * (1 + 1e-9)):
                    assert weights[tree.find(target)] > 0  # edges never land on a zero leaf
