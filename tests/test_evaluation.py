"""Evaluation rounds: whole first episodes of every evaluation env, with the newest weights."""

from __future__ import annotations

import numpy as np

from herd.agents.base import PolicyOutput
from herd.evaluation import Evaluator, eval_due
from herd.interfaces import Params


class TimeStepPolicy:
    """Acts a = t mod 2 (the fake env's rewarded action) once its weights say so, else always 1."""

    version = -1

    def __init__(self):
        self.good = False

    def initial_state(self, n):
        return ()

    def step(self, observation, first, state):
        t = observation[:, 0].astype(np.int64)  # fake env: obs[0] = t
        action = t % 2 if self.good else np.ones(len(t), np.int64)
        return PolicyOutput(action, {}), ()

    def load(self, version, weights):
        self.version = version
        self.good = bool(weights["good"][0])


class Store:
    def __init__(self):
        self.params = None

    def fetch(self, name, min_version=0):
        return self.params if self.params is not None and self.params.version >= min_version else None


def test_rounds_use_the_newest_weights_and_score_whole_first_episodes():
    store = Store()
    policy = TimeStepPolicy()
    evaluator = Evaluator("fake:terminating", policy, store, episodes=3, seed=1)
    # fake:terminating: 5 transitions, reward 1 when a == t % 2. Always 1: rewarded at t = 1, 3 only.
    first = evaluator.run(env_steps=100)
    assert [(r.episode_return, r.episode_length, r.env_steps) for r in first] == [(2.0, 5, 100)] * 3
    store.params = Params(1, {"good": np.array([1])})
    second = evaluator.run(env_steps=200)
    assert [r.episode_return for r in second] == [5.0] * 3 and policy.version == 1
    assert evaluator.rounds == 2 and all(r.task == "fake:terminating" for r in second)


def test_eval_due_every_eval_every_steps():
    assert not eval_due(999, 1000, 0) and eval_due(1000, 1000, 0) and not eval_due(1500, 1000, 1)
    assert eval_due(2500, 1000, 1) and not eval_due(10**9, 0, 0)
