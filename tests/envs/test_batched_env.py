"""Batched environments: both implementations give dm_env semantics per environment."""

from __future__ import annotations

from typing import Callable, Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode

from herd.envs.batched import (
    BatchedEnv,
    BatchedTimeStep,
    EpisodeTracker,
    GymVectorBatchedEnv,
    SequentialBatchedEnv,
    UnsupportedVectorEnv,
    make_batched_env,
)
from herd.envs.registry import make_env
from herd.testing.fake_env import FakeEnv
from herd.types import FIRST, LAST, MID


def balance(obs: np.ndarray) -> np.ndarray:
    """Fixed CartPole controller for [N, 4] observations: keeps the pole up (episodes truncate)."""
    x, x_dot, theta, theta_dot = obs.T
    return (theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0).astype(np.int64)


Policy = Callable[[np.ndarray], np.ndarray]


def run(env: BatchedEnv, policy: Policy, steps: int) -> list[BatchedTimeStep]:
    out = [env.reset()]
    for _ in range(steps):
        out.append(env.step(policy(out[-1].observation)))
    return out


def random_policy(seed: int, n: int) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, 2, size=n)


def check_dm_env_semantics(steps: list[BatchedTimeStep], n: int) -> None:
    """Structural properties every batched env must have, per environment."""
    st = np.stack([s.step_type for s in steps])  # [T, N]
    reward = np.stack([s.reward for s in steps])
    discount = np.stack([s.discount for s in steps])
    for s in steps:
        assert s.step_type.dtype == np.uint8 and s.step_type.shape == (n,)
        assert s.reward.dtype == np.float32 and s.discount.dtype == np.float32
        assert s.observation.shape[0] == n
    assert (st[0] == FIRST).all()
    # FIRST exactly after LAST; MID or LAST after FIRST / MID.
    prev_last = st[:-1] == LAST
    assert (st[1:][prev_last] == FIRST).all()
    assert (st[1:][~prev_last] != FIRST).all()
    assert (reward[st == FIRST] == 0).all() and (discount[st == FIRST] == 1).all()
    assert (discount[st != LAST] == 1).all()
    assert np.isin(discount[st == LAST], [0.0, 1.0]).all()


# --- SequentialBatchedEnv on the fake env: exact sequences ------------------------------------


def test_sequential_exact_sequences_on_fake_env() -> None:
    envs = [make_env("fake:terminating", seed=i, episode_length=2 + i) for i in range(3)]
    env = SequentialBatchedEnv(envs)
    steps = run(env, lambda obs: np.zeros(3, np.int64), 6)
    st = np.stack([s.step_type for s in steps]).T
    np.testing.assert_array_equal(st[0], [FIRST, MID, LAST, FIRST, MID, LAST, FIRST])
    np.testing.assert_array_equal(st[1], [FIRST, MID, MID, LAST, FIRST, MID, MID])
    np.testing.assert_array_equal(st[2], [FIRST, MID, MID, MID, LAST, FIRST, MID])
    # Action 0 is rewarded at even steps t -> t + 1 (default reward: a == t % 2).
    np.testing.assert_array_equal(
        np.stack([s.reward for s in steps]).T[0], [0, 1, 0, 0, 1, 0, 0]
    )
    np.testing.assert_array_equal(
        np.stack([s.discount for s in steps]).T[0], [1, 1, 0, 1, 1, 0, 1]
    )
    np.testing.assert_array_equal(
        np.stack([s.observation[:, 0] for s in steps]).T[0], [0, 1, 2, 0, 1, 2, 0]
    )
    assert envs[0].actions == [0, 0, 0, 0]  # the steps that reset ignored their action


def test_sequential_equals_stepping_each_env() -> None:
    n, steps = 4, 60
    batched = SequentialBatchedEnv(
        [make_env("fake:random_length", seed=10 + i, ending="truncate") for i in range(n)]
    )
    refs = [make_env("fake:random_length", seed=10 + i, ending="truncate") for i in range(n)]
    rng = np.random.default_rng(0)
    got = batched.reset()
    want = [r.reset() for r in refs]
    for _ in range(steps):
        for i, ts in enumerate(want):
            assert got.step_type[i] == ts.step_type
            assert got.reward[i] == (0.0 if ts.reward is None else ts.reward)
            assert got.discount[i] == (1.0 if ts.discount is None else ts.discount)
            np.testing.assert_array_equal(got.observation[i], ts.observation)
        actions = rng.integers(0, 2, size=n)
        got = batched.step(actions)
        want = [r.step(a) for r, a in zip(refs, actions)]
    check_dm_env_semantics([batched.reset()], n)


# --- GymVectorBatchedEnv vs SequentialBatchedEnv on CartPole ----------------------------------


def test_vector_and_sequential_identical_for_one_env() -> None:
    # One env: the vector env's shared generator and env 0's own seed are the same stream.
    kw = dict(max_episode_steps=40)
    vec = make_batched_env("gym:CartPole-v1", 1, seed=5, vectorized=True, **kw)
    seq = make_batched_env("gym:CartPole-v1", 1, seed=5, vectorized=False, **kw)
    assert isinstance(vec, GymVectorBatchedEnv) and isinstance(seq, SequentialBatchedEnv)
    # A noisy balancing policy: some episodes terminate, some reach the limit and truncate.
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 2, size=1500)
    use_random = rng.random(1500) < 0.5
    outs = ([vec.reset()], [seq.reset()])
    for t in range(1500):
        for env, out in zip((vec, seq), outs):
            obs = out[-1].observation
            act = actions[t : t + 1] if use_random[t] else balance(obs)
            out.append(env.step(act))
    for field in ("step_type", "reward", "discount", "observation"):
        np.testing.assert_array_equal(
            np.stack([getattr(s, field) for s in outs[0]]),
            np.stack([getattr(s, field) for s in outs[1]]),
            err_msg=field,
        )
    last = np.stack([s.step_type for s in outs[0]]) == LAST
    disc = np.stack([s.discount for s in outs[0]])
    assert (disc[last] == 0).any() and (disc[last] == 1).any()  # both endings were exercised


@pytest.mark.parametrize("vectorized", [True, False])
def test_cartpole_structure(vectorized: bool) -> None:
    n = 8
    env = make_batched_env(
        "gym:CartPole-v1", n, seed=0, vectorized=vectorized, max_episode_steps=25
    )
    assert (env.num_envs, env.observation_shape, env.num_actions) == (n, (4,), 2)
    assert env.observation_dtype == np.float32
    random_steps, balanced_steps = run(env, random_policy(0, n), 150), run(env, balance, 60)
    check_dm_env_semantics(random_steps, n)
    check_dm_env_semantics(balanced_steps, n)
    steps = random_steps + balanced_steps
    st = np.stack([s.step_type for s in steps])
    disc = np.stack([s.discount for s in steps])
    assert (disc[st == LAST] == 0).any() and (disc[st == LAST] == 1).any()
    assert (np.stack([s.reward for s in steps])[st != FIRST] == 1).all()
    env.close()


def test_vector_env_seeding() -> None:
    a = make_batched_env("gym:CartPole-v1", 4, seed=3)
    b = make_batched_env("gym:CartPole-v1", 4, seed=3)
    c = make_batched_env("gym:CartPole-v1", 4, seed=4)
    obs = a.reset().observation
    np.testing.assert_array_equal(obs, b.reset().observation)
    assert not np.array_equal(obs, c.reset().observation)
    assert len({tuple(o) for o in obs}) == 4  # the envs of one batch start differently


def test_sequential_env_seeding_is_seed_plus_index() -> None:
    env = make_batched_env("fake:terminating", 3, seed=100)
    np.testing.assert_array_equal(env.reset().observation[:, 2], [100, 101, 102])


# --- EpisodeTracker -------------------------------------------------------------------------


@pytest.mark.parametrize("vectorized", [True, False])
def test_tracker_full_cartpole_episode(vectorized: bool) -> None:
    n = 4 if vectorized else 2
    env = make_batched_env("gym:CartPole-v1", n, seed=0, vectorized=vectorized)
    tracker = EpisodeTracker(n)
    ts = env.reset()
    assert tracker.update(ts) == []
    ended = []
    for _ in range(500):
        ts = env.step(balance(ts.observation))
        ended += tracker.update(ts)
    assert sorted(ended) == [(i, 500.0, 500) for i in range(n)]
    assert (ts.step_type == LAST).all() and (ts.discount == 1).all()


def test_tracker_on_fake_env() -> None:
    env = SequentialBatchedEnv(
        [make_env("fake:terminating", seed=0, episode_length=k, reward_fn=lambda t, a: t + 1.0)
         for k in (1, 3)]
    )
    tracker = EpisodeTracker(2)
    ended = [tracker.update(ts) for ts in run(env, lambda o: np.zeros(2, np.int64), 8)]
    assert ended == [
        [],
        [(0, 1.0, 1)],
        [],
        [(0, 1.0, 1), (1, 6.0, 3)],
        [],
        [(0, 1.0, 1)],
        [],
        [(0, 1.0, 1), (1, 6.0, 3)],
        [],
    ]


def test_tracker_counts_whole_games_when_steps_say_so() -> None:
    # One env, a game of two lives: the first ends at a LAST that is not a game over; the
    # FIRST after it (Atari's no-op step) scores 5 for the game but 0 for learning.
    def step(kind: int, reward: float, score: float, over: bool) -> BatchedTimeStep:
        return BatchedTimeStep(
            step_type=np.array([kind], np.uint8), reward=np.array([reward], np.float32),
            discount=np.ones(1, np.float32), observation=np.zeros((1, 1)),
            game_over=np.array([over]), game_reward=np.array([score], np.float32),
        )

    game = [step(FIRST, 0, 0, False), step(MID, 1, 1, False), step(LAST, 2, 2, False),
            step(FIRST, 0, 5, False), step(MID, 3, 3, False), step(LAST, 4, 4, True)]
    tracker = EpisodeTracker(1)
    ended = [tracker.update(ts) for ts in game + game]
    assert ended == [[], [], [], [], [], [(0, 15.0, 4)]] * 2  # 4 agent steps; the next game starts at 0


# --- choosing the implementation, and bad input ----------------------------------------------


def test_make_batched_env_chooses() -> None:
    assert isinstance(make_batched_env("gym:CartPole-v1", 2, 0), GymVectorBatchedEnv)
    sequential = make_batched_env("gym:CartPole-v1", 2, 0, vectorized=False)
    assert isinstance(sequential, SequentialBatchedEnv)
    assert isinstance(make_batched_env("gym:Acrobot-v1", 2, 0), SequentialBatchedEnv)
    assert isinstance(make_batched_env("fake:truncating", 2, 0), SequentialBatchedEnv)
    with pytest.raises(UnsupportedVectorEnv, match="no Gymnasium vector entry point"):
        make_batched_env("gym:Acrobot-v1", 2, 0, vectorized=True)
    with pytest.raises(ValueError, match="num_envs"):
        make_batched_env("gym:CartPole-v1", 0, 0)


class SameStepCartPole(CartPoleVectorEnv):
    metadata = {**CartPoleVectorEnv.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}


@pytest.fixture
def same_step_id() -> Iterator[str]:
    env_id = "HerdTestSameStepCartPole-v0"
    gym.register(
        env_id,
        entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        vector_entry_point=SameStepCartPole,
        max_episode_steps=500,
    )
    yield env_id
    del gym.registry[env_id]


def test_vector_env_requires_next_step_autoreset(same_step_id: str) -> None:
    with pytest.raises(UnsupportedVectorEnv, match="NEXT_STEP"):
        GymVectorBatchedEnv(same_step_id, 2, 0)
    env = make_batched_env(f"gym:{same_step_id}", 2, 0)  # falls back
    assert isinstance(env, SequentialBatchedEnv)
    with pytest.raises(UnsupportedVectorEnv):
        make_batched_env(f"gym:{same_step_id}", 2, 0, vectorized=True)


@pytest.mark.parametrize("vectorized", [True, False])
def test_bad_actions_and_step_before_reset(vectorized: bool) -> None:
    env = make_batched_env("gym:CartPole-v1", 3, 0, vectorized=vectorized)
    assert (env.step(np.zeros(3, np.int64)).step_type == FIRST).all()  # resets first
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="integer"):
        env.step(np.zeros(3, np.float32))


def test_sequential_rejects_mismatched_envs() -> None:
    with pytest.raises(ValueError, match="environment 1"):
        SequentialBatchedEnv([FakeEnv(num_actions=2), FakeEnv(num_actions=3)])
    with pytest.raises(ValueError, match="at least one"):
        SequentialBatchedEnv([])
