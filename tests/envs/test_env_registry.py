"""Environment names: parsing, errors, construction, and EnvInfo."""

from __future__ import annotations

import numpy as np
import pytest

from herd.envs.registry import EnvInfo, EnvName, env_spec, make_env, parse_env_name
from herd.testing.fake_env import FakeEnv


def test_parse_valid_names() -> None:
    assert parse_env_name("gym:CartPole-v1") == EnvName("gym", "CartPole-v1")
    assert parse_env_name("fake:truncating") == EnvName("fake", "truncating")
    assert parse_env_name("dmenv:herd.testing.fake_env:FakeEnv") == EnvName(
        "dmenv", "herd.testing.fake_env:FakeEnv"
    )


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("CartPole-v1", "no scheme.*'gym:'.*'atari:'.*'dmenv:'.*'fake:'"),
        ("mujoco:Ant", "scheme 'mujoco'.*allowed schemes: 'gym:', 'atari:', 'minatar:', 'dmenv:', 'fake:'"),
        ("gym:", "empty target"),
        ("gym:CartPol-v1", "unknown Gymnasium id 'CartPol-v1'; close matches: .*CartPole-v1"),
        ("gym:Xyzzy-v0", "unknown Gymnasium id 'Xyzzy-v0'$"),
        ("gym:no_such_module_xyz:Env-v0", "cannot import module 'no_such_module_xyz'"),
        ("dmenv:just_a_module", "dmenv:package.module:factory"),
        ("fake:nope", "unknown fake env 'nope'"),
    ],
)
def test_parse_errors(name: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        parse_env_name(name)


def test_make_gym_env_with_kwargs_and_single_precision() -> None:
    env = make_env("gym:CartPole-v1", seed=0, max_episode_steps=3)
    ts = env.reset()
    assert ts.observation.dtype == np.float32
    steps = [env.step(i % 2) for i in range(3)]
    assert steps[-1].last() and steps[-1].discount == 1.0  # truncated, not terminated
    assert steps[-1].reward.dtype == np.float32
    assert env.gym_env.spec.id == "CartPole-v1"


def test_make_fake_env_presets_and_overrides() -> None:
    env = make_env("fake:truncating", seed=3, episode_length=2, obs_shape=(3,))
    np.testing.assert_array_equal(env.reset().observation, [0, 0, 3])
    env.step(0)
    ts = env.step(0)
    assert ts.last() and ts.discount == 1.0
    env = make_env("fake:terminating", seed=0, episode_length=1)
    env.reset()
    assert env.step(0).discount == 0.0


def test_make_dmenv_factory() -> None:
    env = make_env("dmenv:herd.testing.fake_env:FakeEnv", seed=4, episode_length=1)
    assert isinstance(env.environment, FakeEnv)  # under SinglePrecision
    assert env.reset().observation[2] == 4  # the factory got the seed


def test_dmenv_errors() -> None:
    with pytest.raises(ValueError, match="no callable 'nope'"):
        make_env("dmenv:herd.testing.fake_env:nope", seed=0)
    with pytest.raises(TypeError, match="dict, not a dm_env.Environment"):
        make_env("dmenv:builtins:dict", seed=0)
    with pytest.raises(ModuleNotFoundError):
        make_env("dmenv:no_such_module_xyz:f", seed=0)


def test_env_spec() -> None:
    info = env_spec("gym:CartPole-v1")
    assert info == EnvInfo((4,), np.dtype(np.float32), 2, "gym:CartPole-v1")
    assert env_spec("fake:terminating", obs_shape=(2, 3), num_actions=5) == EnvInfo(
        (2, 3), np.dtype(np.float32), 5, "fake:terminating"
    )


def test_env_spec_reads_bounded_continuous_actions() -> None:
    info = env_spec("gym:Pendulum-v1")
    assert info.num_actions == 0 and not info.action_spec.discrete
    assert info.action_spec.shape == (1,) and info.action_spec.kind == "continuous"
    assert info.action_spec.minimum == (-2.0,) and info.action_spec.maximum == (2.0,)


def test_agents_without_continuous_actions_refuse_them_naming_the_agent() -> None:
    from herd.config import ConfigError
    from herd.run_config import load_run_config

    for agent in ("impala", "dqn"):
        with pytest.raises(ConfigError, match=f"continuous actions, but agent '{agent}' supports discrete"):
            load_run_config(None, {"env": "gym:Pendulum-v1", "agent_name": agent})


def test_env_info_normalizes() -> None:
    info = EnvInfo([4], "float32", 2, "t")  # type: ignore[arg-type]
    assert info == EnvInfo((4,), np.dtype(np.float32), 2, "t")
    with pytest.raises(ValueError, match="num_actions"):
        EnvInfo((4,), np.dtype(np.float32), 0, "t")


def test_frames_per_step() -> None:
    assert env_spec("gym:CartPole-v1").frames_per_step == 1  # envs without an action repeat
    assert EnvInfo((4, 84, 84), np.uint8, 6, "t", frames_per_step=4).frames_per_step == 4
    with pytest.raises(ValueError, match="frames_per_step"):
        EnvInfo((4,), np.float32, 2, "t", frames_per_step=0)
