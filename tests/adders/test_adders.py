"""The adders' items at terminations, truncations and sequence boundaries, computed by hand."""

import numpy as np
import pytest

from herd import types as ht
from herd.adders import NStepTransitionAdder, SequenceAdder
from herd.agents.base import PolicyOutput
from herd.envs.batched import BatchedTimeStep


class Recorder:
    def __init__(self):
        self.inserts = []

    def insert(self, items, priorities=None, timeout=None):
        self.inserts.append(({k: np.array(v) for k, v in items.items()},
                             None if priorities is None else np.array(priorities)))
        return []


def ts(step_type, reward, discount, obs):
    return BatchedTimeStep(np.array(step_type, np.uint8), np.array(reward, np.float32),
                           np.array(discount, np.float32), np.array(obs, np.float32).reshape(len(step_type), 1))


def out(actions, q=None):
    extras = {} if q is None else {"q": np.array(q, np.float32)}
    return PolicyOutput(np.array(actions, np.int64), extras)


def test_n_step_transitions_at_a_termination():
    """One env, n = 2, gamma 0.5: x0 -r1-> x1 -r2-> x2 -r3-> x3 (terminal)."""
    rec = Recorder()
    adder = NStepTransitionAdder(rec, n=2, discount=0.5)
    adder.start(ts([ht.FIRST], [0], [1], [0]), out([10]), (), 0)
    adder.add(ts([ht.MID], [1], [1], [1]), out([11]), (), 0)
    adder.add(ts([ht.MID], [2], [1], [2]), out([12]), (), 0)  # x0's transition completes: R = 1 + 0.5 * 2
    adder.add(ts([ht.LAST], [3], [0], [3]), out([13]), (), 0)  # x1: 2 + 0.5 * 3, terminal; x2: 3, terminal
    items = [rec.inserts[i][0] for i in range(len(rec.inserts))]
    obs = np.concatenate([it["observation"] for it in items], axis=1)[..., 0]
    reward = np.concatenate([it["reward"] for it in items], axis=1)[0]
    discount = np.concatenate([it["discount"] for it in items], axis=1)[0]
    action = np.concatenate([it["action"] for it in items], axis=1)[0]
    assert obs.tolist() == [[0, 1, 2], [2, 3, 3]]  # (x_t, x_{t+n}) per transition
    assert action.tolist() == [10, 11, 12]
    assert reward.tolist() == pytest.approx([2.0, 3.5, 3.0])
    assert discount.tolist() == pytest.approx([0.25, 0.0, 0.0])  # gamma^2, then cut by the termination


def test_n_step_transitions_at_a_truncation_bootstrap_from_the_last_observation():
    rec = Recorder()
    adder = NStepTransitionAdder(rec, n=3, discount=0.5)
    adder.start(ts([ht.FIRST], [0], [1], [0]), out([0]), (), 0)
    adder.add(ts([ht.MID], [1], [1], [1]), out([0]), (), 0)
    adder.add(ts([ht.LAST], [2], [1], [2]), out([0]), (), 0)  # truncated: discount 1
    # after the reset nothing crosses the boundary
    adder.add(ts([ht.FIRST], [0], [1], [10]), out([0]), (), 0)
    adder.add(ts([ht.MID], [4], [1], [11]), out([0]), (), 0)
    items = [it for it, _ in rec.inserts]
    reward = np.concatenate([it["reward"] for it in items], axis=1)[0]
    discount = np.concatenate([it["discount"] for it in items], axis=1)[0]
    obs = np.concatenate([it["observation"] for it in items], axis=1)[..., 0]
    assert obs.tolist() == [[0, 1], [2, 2]]
    assert reward.tolist() == pytest.approx([1 + 0.5 * 2, 2])
    assert discount.tolist() == pytest.approx([0.25, 0.5])  # gamma^k: a truncation still bootstraps


def test_n_step_priorities_from_the_acting_values():
    rec = Recorder()
    adder = NStepTransitionAdder(rec, n=1, discount=0.9, priority_fn=lambda f, a, r, d, l: np.abs(
        r + d * l["q"].max(axis=1) - f["q"][np.arange(len(a)), a]))
    adder.start(ts([ht.FIRST, ht.FIRST], [0, 0], [1, 1], [0, 0]), out([1, 0], [[0, 2], [1, 0]]), (), 0)
    adder.add(ts([ht.MID, ht.LAST], [1, 5], [1, 0], [1, 1]), out([0, 0], [[3, 1], [9, 9]]), (), 0)
    (item, priorities), = rec.inserts
    # env 0: |1 + 0.9 * 3 - Q(x0, 1) = 2| = 1.7; env 1: terminal, |5 + 0 - Q(x0, 0) = 1| = 4
    assert priorities.tolist() == pytest.approx([1.7, 4.0])


def test_n_step_reward_clip():
    rec = Recorder()
    adder = NStepTransitionAdder(rec, n=1, discount=0.9, reward_clip=1.0)
    adder.start(ts([ht.FIRST], [0], [1], [0]), out([0]), (), 0)
    adder.add(ts([ht.MID], [7], [1], [1]), out([0]), (), 0)
    assert rec.inserts[0][0]["reward"].tolist() == [[1.0]]


def test_sequence_adder_overlaps_by_length_minus_period():
    """length 4, period 3 (IMPALA with T = 3): the last step of an unroll starts the next one."""
    rec = Recorder()
    adder = SequenceAdder(rec, length=4, period=3)
    adder.start(ts([ht.FIRST], [0], [1], [0]), out([0]), (np.array([[0.0]]),), 5)
    for t in range(1, 7):
        last = t == 4
        adder.add(ts([ht.LAST if last else ht.MID], [t], [0 if last else 1], [t]), out([t]),
                  (np.array([[float(t)]]),), 5 + t)
    assert len(rec.inserts) == 2
    first, second = rec.inserts[0][0], rec.inserts[1][0]
    assert first["observation"][:, 0, 0].tolist() == [0, 1, 2, 3]
    assert second["observation"][:, 0, 0].tolist() == [3, 4, 5, 6]
    assert second["step_type"][:, 0].tolist() == [ht.MID, ht.LAST, ht.MID, ht.MID]
    assert second["discount"][:, 0].tolist() == [1, 0, 1, 1]
    assert first["core_state/0"].tolist() == [[[0.0]]]
    assert second["core_state/0"].tolist() == [[[3.0]]]  # the state the policy acted from at x3
    assert first["param_version"].tolist() == [[6]] and second["param_version"].tolist() == [[9]]


def test_sequence_adder_with_a_shorter_period_overlaps_more():
    rec = Recorder()
    adder = SequenceAdder(rec, length=4, period=2)
    adder.start(ts([ht.FIRST], [0], [1], [0]), out([0]), (), 0)
    for t in range(1, 6):
        adder.add(ts([ht.MID], [t], [1], [t]), out([t]), (), 0)
    assert [it["observation"][:, 0, 0].tolist() for it, _ in rec.inserts] == [[0, 1, 2, 3], [2, 3, 4, 5]]
