"""GymEnv: Gymnasium's (terminated, truncated) mapped to dm_env step types and discounts."""

from __future__ import annotations

from typing import Any

import dm_env
import gymnasium as gym
import numpy as np
import pytest
from dm_env import specs

from herd.envs.gym_adapter import GymEnv, space_to_spec


def balance(obs: np.ndarray) -> int:
    """A fixed controller that keeps CartPole up for 500 steps (so episodes only truncate)."""
    x, x_dot, theta, theta_dot = obs
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)


class BothFlagsEnv(gym.Env[np.ndarray, int]):
    """Ends its first step with terminated and truncated both set."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.ones(2, np.float32), 2.5, True, True, {}


def test_cartpole_termination_then_reset() -> None:
    env = GymEnv(gym.make("CartPole-v1"), seed=0)
    ts = env.reset()
    assert ts.step_type == dm_env.StepType.FIRST and ts.reward is None and ts.discount is None
    assert ts.observation.shape == (4,) and ts.observation.dtype == np.float32
    steps = []
    while not ts.last():
        ts = env.step(1)  # always push right: the pole falls within a few dozen steps
        steps.append(ts)
    assert all(s.mid() and s.discount == 1.0 and s.reward == 1.0 for s in steps[:-1])
    assert steps[-1].discount == 0.0 and steps[-1].reward == 1.0
    assert len(steps) < 100
    after = env.step(1)  # action ignored: the step after LAST is the reset
    assert after.first() and after.reward is None


def test_truncation_has_discount_one() -> None:
    env = GymEnv(gym.make("CartPole-v1", max_episode_steps=5), seed=0)
    ts = env.reset()
    types = []
    for _ in range(5):
        ts = env.step(balance(ts.observation))
        types.append(ts.step_type)
    assert types == [dm_env.StepType.MID] * 4 + [dm_env.StepType.LAST]
    assert ts.discount == 1.0 and ts.reward == 1.0
    assert env.step(0).first()


def test_termination_wins_over_truncation() -> None:
    env = GymEnv(BothFlagsEnv())
    env.reset()
    ts = env.step(2)
    assert ts.last() and ts.discount == 0.0 and ts.reward == 2.5


def test_step_before_reset_resets() -> None:
    env = GymEnv(gym.make("CartPole-v1"), seed=1)
    assert env.step(0).first()


def test_seed_applies_to_first_reset_only() -> None:
    a = GymEnv(gym.make("CartPole-v1"), seed=7)
    b = GymEnv(gym.make("CartPole-v1"), seed=7)
    c = GymEnv(gym.make("CartPole-v1"), seed=8)
    first = a.reset().observation
    np.testing.assert_array_equal(first, b.reset().observation)
    assert not np.array_equal(first, c.reset().observation)
    assert not np.array_equal(first, a.reset().observation)  # the generator continues
    assert a.gym_env.action_space.sample() == b.gym_env.action_space.sample()


def test_specs_from_spaces() -> None:
    env = GymEnv(gym.make("CartPole-v1"))
    obs_spec, action_spec = env.observation_spec(), env.action_spec()
    assert isinstance(obs_spec, specs.BoundedArray)
    assert obs_spec.shape == (4,) and obs_spec.dtype == np.float32
    assert isinstance(action_spec, specs.DiscreteArray) and action_spec.num_values == 2
    assert env.reward_spec().dtype == np.float64
    assert env.discount_spec().minimum == 0.0 and env.discount_spec().maximum == 1.0


def test_box_actions_give_bounded_spec() -> None:
    # The adapter converts continuous actions; the actor rejects them (see test_env_registry).
    env = GymEnv(gym.make("Pendulum-v1"))
    spec = env.action_spec()
    assert isinstance(spec, specs.BoundedArray) and not isinstance(spec, specs.DiscreteArray)
    assert spec.shape == (1,)


def test_unsupported_space_names_it() -> None:
    space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))
    with pytest.raises(NotImplementedError, match="Tuple"):
        space_to_spec(space, "observation")
    with pytest.raises(NotImplementedError, match="start=1"):
        space_to_spec(gym.spaces.Discrete(3, start=1), "action")
