"""The deterministic FakeEnv that other tests rely on."""

from __future__ import annotations

import numpy as np
import pytest

from herd.testing.fake_env import FakeEnv


def test_observations_encode_step_episode_and_seed() -> None:
    env = FakeEnv(episode_length=2, obs_shape=(5,), seed=9)
    np.testing.assert_array_equal(env.reset().observation, [0, 0, 9, 0, 0])
    np.testing.assert_array_equal(env.step(0).observation, [1, 0, 9, 1, 1])
    np.testing.assert_array_equal(env.step(0).observation, [2, 0, 9, 2, 2])
    np.testing.assert_array_equal(env.step(0).observation, [0, 1, 9, 0, 0])  # reset


def test_default_reward_and_endings() -> None:
    for ending, last_discount in (("terminate", 0.0), ("truncate", 1.0)):
        env = FakeEnv(episode_length=4, num_actions=3, ending=ending)
        env.reset()
        steps = [env.step(t % 3 if t != 2 else 0) for t in range(4)]
        assert [s.reward for s in steps] == [1.0, 1.0, 0.0, 1.0]
        assert [s.discount for s in steps] == [1.0, 1.0, 1.0, last_discount]
        assert [s.last() for s in steps] == [False, False, False, True]
        assert env.step(2).first()  # action ignored
        assert env.actions == [0, 1, 0, 0]


def test_random_length_is_deterministic() -> None:
    def lengths(seed: int) -> list[int]:
        env = FakeEnv(episode_length=6, random_length=True, seed=seed)
        env.reset()
        out, n = [], 0
        while len(out) < 20:
            n += 1
            if env.step(0).last():
                out.append(n)
                env.step(0)
                n = 0
        return out

    assert lengths(1) == lengths(1)
    assert lengths(1) != lengths(2)
    assert set(lengths(1)) <= set(range(1, 7)) and len(set(lengths(1))) > 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="ending"):
        FakeEnv(ending="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="episode_length"):
        FakeEnv(episode_length=0)
    env = FakeEnv(num_actions=2)
    env.reset()
    with pytest.raises(ValueError, match="out of range"):
        env.step(2)
