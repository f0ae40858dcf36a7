"""dm_env wrappers: SinglePrecision, RewardClip, EpisodeStatistics."""

from __future__ import annotations

import numpy as np
import pytest
from dm_env import specs

from herd.envs.wrappers import EpisodeStatistics, RewardClip, SinglePrecision
from herd.testing.fake_env import FakeEnv


def test_single_precision_casts_steps_and_specs() -> None:
    env = SinglePrecision(FakeEnv(episode_length=2, obs_dtype=np.float64))
    ts = env.reset()
    assert ts.observation.dtype == np.float32 and ts.reward is None and ts.discount is None
    ts = env.step(0)
    assert ts.observation.dtype == np.float32
    assert isinstance(ts.reward, np.float32) and isinstance(ts.discount, np.float32)
    assert env.observation_spec().dtype == np.float32
    assert env.reward_spec().dtype == np.float32
    assert env.discount_spec().dtype == np.float32
    assert isinstance(env.discount_spec(), specs.BoundedArray)
    assert env.action_spec().dtype == np.int64  # integers untouched


def test_single_precision_leaves_other_dtypes() -> None:
    env = SinglePrecision(FakeEnv(obs_dtype=np.uint8))
    assert env.reset().observation.dtype == np.uint8
    assert env.observation_spec().dtype == np.uint8


def test_reward_clip() -> None:
    env = RewardClip(FakeEnv(episode_length=3, reward_fn=lambda t, a: [5.0, -3.0, 0.5][t]), -1, 1)
    assert env.reset().reward is None
    assert [float(env.step(0).reward) for _ in range(3)] == [1.0, -1.0, 0.5]
    spec = env.reward_spec()
    assert isinstance(spec, specs.BoundedArray) and spec.minimum == -1 and spec.maximum == 1
    with pytest.raises(ValueError, match="lo <= hi"):
        RewardClip(FakeEnv(), 1.0, -1.0)


def test_episode_statistics() -> None:
    env = EpisodeStatistics(FakeEnv(episode_length=3, reward_fn=lambda t, a: t + 1.0))
    assert env.last_episode_return is None and env.episode_count == 0
    env.reset()
    env.step(0)
    assert env.episode_return == 1.0 and env.episode_length == 1
    env.step(0)
    env.step(0)  # LAST
    assert (env.last_episode_return, env.last_episode_length, env.episode_count) == (6.0, 3, 1)
    assert env.step(0).first() and env.episode_length == 0
    for _ in range(3):
        env.step(0)
    assert env.episode_count == 2 and env.last_episode_return == 6.0


def test_wrappers_forward_attributes() -> None:
    env = SinglePrecision(EpisodeStatistics(FakeEnv()))
    assert env.episode_count == 0  # found on the inner wrapper
    assert isinstance(env.actions, list)  # found on the FakeEnv
