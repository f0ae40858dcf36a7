"""atari:<Game> on real ALE: names, settings, specs, and the wrappers' semantics
(stacking, max-pool, no-op starts, life loss vs game over, truncation, seeding)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py", reason="atari tests need herd[atari]")

from ale_py import vector_env  # noqa: E402

from herd.envs import atari  # noqa: E402
from herd.envs.atari import AtariBatchedEnv, AtariSettings, resolve  # noqa: E402
from herd.envs.batched import EpisodeTracker, make_batched_env  # noqa: E402
from herd.envs.registry import env_spec, make_env, parse_env_name  # noqa: E402
from herd.types import FIRST, LAST, MID  # noqa: E402


def rollout(env: AtariBatchedEnv, steps: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = [env.reset()]
    for _ in range(steps):
        out.append(env.step(rng.integers(0, env.num_actions, env.num_envs)))
    return out


def stacked(steps: list, field: str) -> np.ndarray:
    return np.stack([getattr(s, field) for s in steps])  # [T, N, ...]


# --- names, settings and specs -----------------------------------------------------------------


def test_specs_and_frames_per_step() -> None:
    info = env_spec("atari:Pong")
    assert info.observation_shape == (4, 84, 84) and info.observation_dtype == np.uint8
    assert (info.num_actions, info.frames_per_step) == (6, 4)
    assert env_spec("atari:Breakout").num_actions == 4  # the game's minimal set
    assert env_spec("atari:Breakout-full").num_actions == 18
    assert env_spec("atari:ms_pacman-v5").num_actions == 9  # snake_case ROM ids work too
    env = make_batched_env("atari:Pong", 3, seed=0)
    assert isinstance(env, AtariBatchedEnv) and env.frames_per_step == 4
    ts = env.reset()
    assert ts.observation.shape == (3, 4, 84, 84) and ts.observation.dtype == np.uint8
    assert ts.reward.dtype == np.float32 and ts.discount.dtype == np.float32
    assert ts.step_type.dtype == np.uint8 and ts.game_over.dtype == bool
    env.close()


def test_settings_by_name_and_kwargs() -> None:
    rom, paper, rest = resolve("Pong")
    assert rom == "pong" and rest == {}
    assert paper == atari.SETTINGS["paper"] == AtariSettings(
        repeat_action_probability=0.0, max_pool=True, noop_max=30, life_loss_episodes=True,
        frameskip=4, full_action_space=False, fire_reset=False, stack=4, size=84,
        max_episode_frames=108_000,
    )
    _, v5, _ = resolve("SpaceInvaders-v5-full")
    assert (v5.repeat_action_probability, v5.max_pool, v5.noop_max, v5.life_loss_episodes) == (0.25, False, 0, False)
    assert v5.full_action_space and v5.frameskip == 4 and v5.max_episode_frames == 108_000
    _, tuned, rest = resolve("Pong", noop_max=0, num_threads=1)
    assert tuned.noop_max == 0 and rest == {"num_threads": 1}


def test_settings_reach_the_vector_env(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    class Recording(vector_env.AtariVectorEnv):
        def __init__(self, game, num_envs, **kwargs):
            seen.update(kwargs, game=game)
            super().__init__(game, num_envs, **kwargs)

    monkeypatch.setattr(vector_env, "AtariVectorEnv", Recording)
    make_batched_env("atari:Breakout-v5", 1, seed=0).close()
    assert seen["game"] == "breakout"
    assert (seen["repeat_action_probability"], seen["maxpool"], seen["noop_max"]) == (0.25, False, 0)
    assert seen["reward_clipping"] is False and seen["episodic_life"] is False
    assert seen["life_loss_info"] is False and seen["use_fire_reset"] is False
    make_batched_env("atari:Breakout", 1, seed=0).close()
    assert (seen["repeat_action_probability"], seen["maxpool"], seen["noop_max"]) == (0.0, True, 30)
    assert seen["life_loss_info"] is True and seen["frameskip"] == 4 and seen["stack_num"] == 4


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("atari:Pnog", "unknown Atari game 'Pnog'; close matches: .*Pong"),
        ("atari:Pong-v4", r"unknown option\(s\) \['v4'\]"),
        ("atari:Pong-v5-paper", "choose one setting"),
    ],
)
def test_bad_names(name: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        parse_env_name(name)


def test_bad_kwargs() -> None:
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['sticky'\]"):
        make_batched_env("atari:Pong", 1, seed=0, sticky=0.1)
    with pytest.raises(ValueError, match="repeat_action_probability"):
        make_env("atari:Pong", 0, repeat_action_probability=2.0)


# --- the wrappers' semantics ---------------------------------------------------------------


def test_frames_are_stacked_oldest_first() -> None:
    steps = rollout(make_batched_env("atari:Breakout", 2, seed=1), 60)
    assert (steps[0].observation[:, :3] == 0).all()  # a game starts with black history
    for prev, cur in zip(steps, steps[1:]):
        mid = cur.step_type == MID
        np.testing.assert_array_equal(cur.observation[mid, :3], prev.observation[mid, 1:])
    assert len({s.observation[0, -1].tobytes() for s in steps}) > 10  # the frames do change


def test_max_pool_over_the_last_two_frames() -> None:
    # Same deterministic game (no sticky actions, no no-ops) with and without the max-pool:
    # resizing is monotone, so the pooled frame is >= the last frame everywhere, and > where
    # the objects moved between the last two frames.
    kw = dict(noop_max=0)
    pooled = rollout(make_batched_env("atari:Pong", 1, seed=0, max_pool=True, **kw), 80)
    last = rollout(make_batched_env("atari:Pong", 1, seed=0, max_pool=False, **kw), 80)
    p, q = stacked(pooled, "observation")[:, 0, -1], stacked(last, "observation")[:, 0, -1]
    assert (p >= q).all()
    assert (p > q).any(axis=(1, 2)).sum() > 20  # most steps, once the ball is in play


def test_noop_starts() -> None:
    # Freeway's cars move from the first frame, so each start is the game after a unique
    # number of no-op frames: at most 30 of them, and not the same number for every game.
    ref = make_batched_env("atari:Freeway", 1, seed=0, noop_max=0, frameskip=1)
    frames = [ref.reset().observation[0, -1]]
    frames += [ref.step(np.zeros(1, np.int64)).observation[0, -1] for _ in range(40)]
    starts = make_batched_env("atari:Freeway", 8, seed=0).reset().observation[:, -1]
    noops = [[k for k, f in enumerate(frames) if np.array_equal(f, s)] for s in starts]
    assert all(len(k) == 1 and k[0] <= 30 for k in noops), noops
    assert len({k[0] for k in noops}) > 1
    plain = make_batched_env("atari:Freeway", 4, seed=0, noop_max=0).reset().observation
    assert all(np.array_equal(o, plain[0]) for o in plain)  # without no-ops every game starts alike


def test_life_loss_ends_the_episode_not_the_game(monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_batched_env("atari:Breakout", 2, seed=0)
    sent = []
    native_step = env._env.step
    monkeypatch.setattr(env._env, "step", lambda a: (sent.append(np.array(a)), native_step(a))[1])
    steps = rollout(env, 1500)
    st, over = stacked(steps, "step_type"), stacked(steps, "game_over")
    disc, reward, score = stacked(steps, "discount"), stacked(steps, "reward"), stacked(steps, "game_reward")
    tracker = EpisodeTracker(2)
    games = [g for s in steps for g in tracker.update(s)]
    assert len(games) >= 2
    for i in range(2):
        ends = np.flatnonzero(over[:, i])
        assert len(ends) >= 1
        # Breakout has 5 lives: every game is 4 life-loss episodes and a last one.
        lasts = np.flatnonzero(st[: ends[-1] + 1, i] == LAST)
        np.testing.assert_array_equal(lasts[4::5], ends)
        assert len(lasts) == 5 * len(ends)
        life_lost = lasts[~over[lasts, i]]
        assert (disc[life_lost, i] == 0).all()  # terminal for learning
        assert (st[life_lost + 1, i] == FIRST).all()
        # The step after a life loss ignores its action: it sends a no-op.
        assert all(sent[t][i] == 0 for t in life_lost)  # sent[t] is the action of step t + 1
        # Whole-game returns: the score over all five lives, FIRST steps' score included.
        starts = [0] + list(ends[:-1] + 1)
        want = [(i, float(score[a + 1 : b + 1, i].sum()), int((st[a + 1 : b + 1, i] != FIRST).sum()))
                for a, b in zip(starts, ends)]
        assert [g for g in games if g[0] == i] == want
    assert (reward[st == FIRST] == 0).all()
    np.testing.assert_array_equal(reward[st != FIRST], score[st != FIRST])


def test_v5_episodes_are_whole_games() -> None:
    steps = rollout(make_batched_env("atari:Breakout-v5", 2, seed=0), 1200)
    st, over = stacked(steps, "step_type"), stacked(steps, "game_over")
    assert (st == LAST).any()
    np.testing.assert_array_equal(over, st == LAST)


def test_truncation_at_the_frame_limit() -> None:
    env = make_batched_env("atari:Pong", 2, seed=0, max_episode_frames=40, noop_max=0)
    steps = rollout(env, 12)
    st = stacked(steps, "step_type")
    assert (st[10] == LAST).all() and (st[11] == FIRST).all() and (st[1:10] == MID).all()
    assert (steps[10].discount == 1).all() and steps[10].game_over.all()  # truncated, not terminal


def test_seeding_is_seed_plus_index() -> None:
    many = stacked(rollout(make_batched_env("atari:Breakout", 3, seed=10), 20), "observation")
    again = stacked(rollout(make_batched_env("atari:Breakout", 3, seed=10), 20), "observation")
    np.testing.assert_array_equal(many, again)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 4, 3) for _ in range(20)]
    one = make_batched_env("atari:Breakout", 1, seed=12)
    obs = [one.reset().observation[0]] + [one.step(a[2:3]).observation[0] for a in actions]
    np.testing.assert_array_equal(np.stack(obs), many[:, 2])  # env 2 of seed 10 is seed 12


def test_single_env_view_follows_dm_env() -> None:
    env = make_env("atari:Breakout", seed=0)
    assert env.frames_per_step == 4
    ts = env.reset()
    assert ts.first() and ts.observation.shape == (4, 84, 84) and ts.observation.dtype == np.uint8
    rng = np.random.default_rng(0)
    kinds = []
    for _ in range(400):
        ts = env.step(int(rng.integers(0, 4)))
        kinds.append(ts.step_type)
        if ts.last():
            assert ts.discount == 0.0 and env.game_over is False  # a life, not the game
            break
    assert kinds[-1].last() and all(k.mid() for k in kinds[:-1])
    assert env.step(0).first()
    assert env.observation_spec().dtype == np.uint8 and env.action_spec().num_values == 4
