"""minatar:<game> on the real minatar package: specs, observations, actions, defaults, batching."""

from __future__ import annotations

import numpy as np
import pytest

minatar = pytest.importorskip("minatar", reason="minatar tests need herd[minatar]")

from herd.envs.batched import EpisodeTracker, SequentialBatchedEnv, make_batched_env  # noqa: E402
from herd.envs.minatar import GAMES, MinAtarEnv  # noqa: E402
from herd.envs.registry import env_spec, make_env, parse_env_name  # noqa: E402
from herd.types import FIRST, LAST  # noqa: E402

CHANNELS = {"breakout": 4, "asterix": 4, "freeway": 7, "seaquest": 10, "space_invaders": 6}
MINIMAL = {"breakout": 3, "asterix": 5, "freeway": 3, "seaquest": 6, "space_invaders": 4}


@pytest.mark.parametrize("game", GAMES)
def test_specs(game: str) -> None:
    info = env_spec(f"minatar:{game}")
    assert info.observation_shape == (CHANNELS[game], 10, 10) and info.observation_dtype == np.uint8
    assert info.num_actions == MINIMAL[game] and info.frames_per_step == 1
    assert env_spec(f"minatar:{game}-full").num_actions == 6


def test_observations_are_minatar_planes_in_chw() -> None:
    ours = make_env("minatar:seaquest", seed=3)
    theirs = minatar.Environment("seaquest")  # the package's defaults: sticky 0.1, ramping
    theirs.seed(3)
    theirs.reset()
    ts = ours.reset()
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert ts.observation.dtype == np.uint8 and set(np.unique(ts.observation)) <= {0, 1}
        np.testing.assert_array_equal(ts.observation, theirs.state().transpose(2, 0, 1))
        if ts.last():
            break
        a = int(rng.integers(0, 6))
        ts = ours.step(a)
        reward, _ = theirs.act(a)  # seaquest's minimal set is all six actions, in order
        assert ts.reward == reward


def test_package_defaults_and_overrides() -> None:
    env = MinAtarEnv("asterix", seed=0)
    assert env._env.sticky_action_prob == 0.1 and env._env.env.ramping is True
    env = MinAtarEnv("asterix", seed=0, sticky_action_prob=0.0, difficulty_ramping=False)
    assert env._env.sticky_action_prob == 0.0 and env._env.env.ramping is False


def test_action_sets() -> None:
    assert MinAtarEnv("breakout", 0).action_set == [0, 1, 3]  # no-op, left, right
    assert MinAtarEnv("breakout-full", 0).action_set == list(range(6))
    assert MinAtarEnv("breakout", 0, full_action_space=True).action_set == list(range(6))


def test_batched_episodes_terminate() -> None:
    env = make_batched_env("minatar:breakout", 4, seed=0)
    assert isinstance(env, SequentialBatchedEnv)
    assert (env.observation_shape, env.observation_dtype, env.num_actions) == ((4, 10, 10), np.uint8, 3)
    tracker = EpisodeTracker(4)
    ts = env.reset()
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(300):
        prev = ts
        ts = env.step(rng.integers(0, 3, 4))
        assert ts.observation.shape == (4, 4, 10, 10) and ts.observation.dtype == np.uint8
        assert (ts.step_type[prev.step_type == LAST] == FIRST).all()
        assert (ts.discount[ts.step_type == LAST] == 0).all()  # games end by terminating
        episodes += tracker.update(ts)
    assert len(episodes) >= 4


def test_seeding() -> None:
    def run(seed: int) -> np.ndarray:
        env = make_env("minatar:asterix", seed=seed)
        obs = [env.reset().observation]
        obs += [env.step(i % 5).observation for i in range(30)]
        return np.stack(obs)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


@pytest.mark.parametrize(
    "name, pattern",
    [("minatar:pong", "unknown MinAtar game 'pong'; known: breakout"), ("minatar:breakout-v5", "only option is 'full'")],
)
def test_bad_names(name: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        parse_env_name(name)
