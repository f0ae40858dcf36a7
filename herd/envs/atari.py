"""Atari 2600 games through ale-py's threaded C++ vector environment.

Data flow: ``registry.parse_env_name("atari:Pong")`` checks the name; the actor's
``batched.make_batched_env`` builds an :class:`AtariBatchedEnv` (all ``N`` games of one
actor in one ``ale_py.vector_env.AtariVectorEnv``), and ``registry.make_env`` /
``env_spec`` get the same thing with ``N = 1`` seen as a ``dm_env`` (:class:`AtariEnv`).
Observations are uint8 ``[4, 84, 84]`` (four greyscale frames stacked, oldest first), the
shape the ``shallow`` and ``deep`` torsos take. Needs ``pip install 'herd[atari]'``.

Names: ``atari:<Game>[-<option>...]``. ``<Game>`` is the ROM in PascalCase as in
Gymnasium's ``ALE/<Game>-v5`` ids (``Pong``, ``Breakout``, ``MsPacman``) or ale-py's
snake_case id (``ms_pacman``). Options: a setting, ``paper`` (the default) or ``v5``,
and ``full`` for all 18 actions instead of the game's minimal set. So ``atari:Pong``,
``atari:Pong-v5``, ``atari:Breakout-full``. Keyword arguments override single fields of
:class:`AtariSettings` (``make_env("atari:Pong", 0, noop_max=0)``); ``num_threads``
sets the vector env's worker threads (0, the default: one per core).

Settings (:data:`SETTINGS`):

* ``paper``: IMPALA's, after Mnih et al. 2016: no sticky actions; every action repeated
  for 4 frames, the observed frame the max over the last two (flicker); 84x84 greyscale;
  4 frames stacked (at a game's start the older ones are black); up to 30 no-op frames at
  the start of each game (a uniform number, frames rather than agent steps, as the
  no-op starts of Baselines and Gymnasium's ``AtariPreprocessing`` do); no FIRE pressed
  for the agent at the start (``fire_reset=True`` adds Baselines' ``FireResetEnv``);
  an episode ends at every life loss (terminal, discount 0), while the game goes on.
* ``v5``: the emulator as Gymnasium's ``ALE/<Game>-v5`` sets it up (Machado et al. 2018):
  sticky actions with probability 0.25, action repeat 4 keeping the last frame (no
  max-pool), no no-ops, an episode is a whole game. Observations are preprocessed as in
  ``paper`` so that one network fits both.

Both cut a game at 108,000 frames (30 minutes of play) as a truncation (discount 1).
Rewards are the game's own: clipping them is the learner's job (``agent.reward_clip``).

Life loss vs game over. With ``paper``, a life loss ends the *learning* episode: the step
is ``LAST`` with discount 0 and, as ``dm_env`` wants, the next step ignores its action: it
sends a no-op (action 0, which is NOOP in every action set) and comes back as ``FIRST``,
with the game still running (as Baselines' ``EpisodicLifeEnv`` does). Episode *statistics*
count whole games: every :class:`BatchedTimeStep` carries ``game_over`` (a whole game ended
on this step: a life-loss ``LAST`` is not one) and ``game_reward`` (the score change,
which also counts that no-op step), and ``batched.EpisodeTracker`` reports one episode per
game: its return is the game's score, its length the agent steps (non-``FIRST`` steps) of
all its lives. A life is taken as lost when the lives counter drops and stays above zero;
a drop to zero is the game's end (the rule of Baselines' ``EpisodicLifeEnv``).

Frames: every agent step is ``frameskip`` (4) emulator frames; :attr:`frames_per_step`
(and ``EnvInfo.frames_per_step``) say so. The no-op step after a life loss is ``FIRST``:
like resets it is not an agent step, so its 4 frames are not counted.

Why ale-py's vector env rather than Gymnasium's ``AtariPreprocessing`` and
``FrameStackObservation`` wrappers around ``ALE/<Game>-v5``: both do the same
preprocessing, and through Herd's batched interface the vector env is faster on one core
and can use more. ``benchmarks/env_throughput.py``, Pong, 16 envs, random actions, on the
2-core machine with one core busy with another job: vector env 2,100-2,300 agent steps/s
with 1 thread (2,200-2,600 with 2), Gymnasium wrappers 1,450-1,800, in two runs each.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import TYPE_CHECKING, Any

import dm_env
import numpy as np

if TYPE_CHECKING:
    from herd.envs.registry import ActionSpec
from dm_env import specs

from herd.envs.batched import BatchedTimeStep, check_actions
from herd.envs.registry import MissingDependency
from herd.types import FIRST, LAST, MID

INSTALL_HINT = "pip install 'herd[atari]'"
OPTIONS = ("paper", "v5", "full")


@dataclasses.dataclass(frozen=True)
class AtariSettings:
    """How the emulator is driven and its frames preprocessed (see the module docstring)."""

    repeat_action_probability: float  # sticky actions: repeat the previous action instead
    max_pool: bool  # observe the max of the last two of the repeated frames
    noop_max: int  # up to this many no-op frames at the start of each game
    life_loss_episodes: bool  # a life loss ends the learning episode (not the game)
    frameskip: int = 4  # emulator frames per agent step (action repeat)
    full_action_space: bool = False  # all 18 actions instead of the game's minimal set
    fire_reset: bool = False  # press FIRE at the start of each game, where the game has it
    stack: int = 4  # frames per observation
    size: int = 84  # observations are size x size greyscale
    max_episode_frames: int = 108_000  # a game is truncated after this many frames

    def __post_init__(self) -> None:
        if not 0.0 <= self.repeat_action_probability <= 1.0:
            raise ValueError(
                f"repeat_action_probability must be in [0, 1], got {self.repeat_action_probability}"
            )
        for name in ("frameskip", "stack", "size", "max_episode_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.noop_max < 0:
            raise ValueError(f"noop_max must be >= 0, got {self.noop_max}")


SETTINGS = {
    "paper": AtariSettings(
        repeat_action_probability=0.0, max_pool=True, noop_max=30, life_loss_episodes=True
    ),
    "v5": AtariSettings(
        repeat_action_probability=0.25, max_pool=False, noop_max=0, life_loss_episodes=False
    ),
}


def _import_ale() -> Any:
    try:
        import ale_py
        from ale_py import vector_env  # noqa: F401  # the optional C++ vector interface
    except ImportError as e:
        raise MissingDependency(f"Atari games need ale-py ({e}): {INSTALL_HINT}") from None
    return ale_py


@functools.cache
def _rom_ids() -> dict[str, str]:
    """Game name (PascalCase and snake_case) -> ale-py ROM id."""
    from ale_py import roms
    from ale_py.registration import rom_id_to_name

    ids = roms.get_all_rom_ids()
    return {**{rom_id_to_name(r): r for r in ids}, **{r: r for r in ids}}


@dataclasses.dataclass(frozen=True)
class AtariName:
    """A parsed ``atari:`` target: the ROM id, the setting's name and the action set."""

    rom: str
    setting: str
    full_action_space: bool


def parse_atari_target(target: str) -> AtariName:
    """``Pong-v5-full`` -> ``AtariName("pong", "v5", True)``; ``ValueError`` naming what is wrong."""
    _import_ale()
    game, *options = target.split("-")
    rom = _rom_ids().get(game)
    if rom is None:
        close = difflib.get_close_matches(game, list(_rom_ids()), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown Atari game {game!r}{hint}")
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise ValueError(
            f"atari:{target}: unknown option(s) {unknown}; options are {', '.join(OPTIONS)}"
        )
    settings = [o for o in options if o in SETTINGS]
    if len(settings) > 1:
        raise ValueError(f"atari:{target}: choose one setting, got {settings}")
    return AtariName(rom, settings[0] if settings else "paper", "full" in options)


def resolve(target: str, **kwargs: Any) -> tuple[str, AtariSettings, dict[str, Any]]:
    """The ROM id, the settings (name, then ``kwargs`` that name fields) and the other kwargs."""
    name = parse_atari_target(target)
    settings = dataclasses.replace(SETTINGS[name.setting], full_action_space=name.full_action_space)
    fields = {f.name for f in dataclasses.fields(AtariSettings)}
    overrides = {k: v for k, v in kwargs.items() if k in fields}
    rest = {k: v for k, v in kwargs.items() if k not in fields}
    unknown = set(rest) - {"num_threads"}
    if unknown:
        raise ValueError(
            f"atari:{target}: unknown keyword argument(s) {sorted(unknown)}; "
            f"known: {sorted(fields | {'num_threads'})}"
        )
    return name.rom, dataclasses.replace(settings, **overrides), rest


class AtariBatchedEnv:
    """``N`` Atari games in one ale-py ``AtariVectorEnv``, as a ``batched.BatchedEnv``.

    Besides the batched-env semantics (see ``herd/envs/batched.py``), every step carries
    ``game_over`` and ``game_reward`` for whole-game statistics (module docstring).
    Environment ``i`` is seeded with ``seed + i``, as on the sequential path.
    """

    def __init__(
        self, rom: str, num_envs: int, seed: int, settings: AtariSettings, num_threads: int = 0
    ) -> None:
        ale_py = _import_ale()
        from ale_py.vector_env import AtariVectorEnv

        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        s = settings
        self._env = AtariVectorEnv(
            rom,
            num_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=s.max_episode_frames,
            repeat_action_probability=s.repeat_action_probability,
            full_action_space=s.full_action_space,
            img_height=s.size,
            img_width=s.size,
            grayscale=True,
            stack_num=s.stack,
            frameskip=s.frameskip,
            maxpool=s.max_pool,
            noop_max=s.noop_max,
            episodic_life=False,  # ale-py's resets the whole game at a life loss
            life_loss_info=s.life_loss_episodes,  # terminated at a life loss, the game goes on
            reward_clipping=False,  # the learner's job
            use_fire_reset=s.fire_reset,
        )
        action_set = self._env.ale.get_action_set()
        if action_set[0] != ale_py.Action.NOOP:  # the no-op step after a life loss sends 0
            self._env.close()
            raise ValueError(f"atari {rom}: action 0 is {action_set[0]}, not NOOP")
        self.rom = rom
        self.settings = settings
        self._num_envs = num_envs
        self._num_actions = len(action_set)
        self._obs_shape = tuple(self._env.single_observation_space.shape)
        self._seed: int | None = seed
        self._started = False
        self._reset_state(np.zeros(num_envs, np.int32))

    def _reset_state(self, lives: np.ndarray) -> None:
        n = self._num_envs
        self._after_done = np.zeros(n, dtype=bool)  # the last native step ended a life or game
        self._life_lost = np.zeros(n, dtype=bool)  # ... and the game goes on: send a no-op
        self._lives = np.asarray(lives, dtype=np.int32).copy()

    @property
    def num_envs(self) -> int:
        return self._num_envs

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self._obs_shape

    @property
    def observation_dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    @property
    def num_actions(self) -> int:
        return self._num_actions

    @property
    def action_spec(self) -> "ActionSpec":
        from herd.envs.registry import ActionSpec

        return ActionSpec.discrete_actions(self.num_actions)

    @property
    def frames_per_step(self) -> int:
        """Emulator frames per agent step (the action repeat)."""
        return self.settings.frameskip

    def reset(self) -> BatchedTimeStep:
        obs, info = self._env.reset(seed=self._seed)
        self._seed = None  # later resets continue each game's own generator
        self._started = True
        self._reset_state(info["lives"])
        n = self._num_envs
        return BatchedTimeStep(
            step_type=np.full(n, FIRST, dtype=np.uint8),
            reward=np.zeros(n, dtype=np.float32),
            discount=np.ones(n, dtype=np.float32),
            observation=np.asarray(obs),  # a fresh array on every call
            game_over=np.zeros(n, dtype=bool),
            game_reward=np.zeros(n, dtype=np.float32),
        )

    def step(self, actions: np.ndarray) -> BatchedTimeStep:
        actions = check_actions(actions, self._num_envs)
        if not self._started:
            return self.reset()
        if self._life_lost.any():
            actions = np.where(self._life_lost, 0, actions)  # the step after LAST ignores its action
        obs, reward, terminated, truncated, info = self._env.step(actions)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        lives = np.asarray(info["lives"], dtype=np.int32)
        done = terminated | truncated
        life_lost = np.zeros_like(done)
        if self.settings.life_loss_episodes:
            life_lost = terminated & ~truncated & (lives > 0) & (lives < self._lives)
        first = self._after_done
        # After a done the next native step is the reset (game over) or our no-op (life lost):
        # FIRST. A done on such a step (a life lost within the no-op's frames) makes the next
        # step FIRST again rather than leave LAST unmatched.
        step_type = np.where(first, FIRST, np.where(done, LAST, MID)).astype(np.uint8)
        game_reward = np.asarray(reward, dtype=np.float32).copy()
        learn_reward = np.where(first, 0.0, game_reward).astype(np.float32)
        discount = np.where(terminated & ~first, 0.0, 1.0).astype(np.float32)
        game_over = done & ~life_lost
        self._after_done = done
        self._life_lost = life_lost
        self._lives = lives
        return BatchedTimeStep(
            step_type=step_type,
            reward=learn_reward,
            discount=discount,
            observation=np.asarray(obs),  # a fresh array on every call
            game_over=game_over,
            game_reward=game_reward,
        )

    def close(self) -> None:
        self._env.close()


def make_batched_atari(target: str, num_envs: int, seed: int, **kwargs: Any) -> AtariBatchedEnv:
    """``num_envs`` games ``atari:<target>`` for one actor (``kwargs``: module docstring)."""
    rom, settings, rest = resolve(target, **kwargs)
    return AtariBatchedEnv(rom, num_envs, seed, settings, **rest)


class AtariEnv(dm_env.Environment):
    """One Atari game as a ``dm_env.Environment`` (an :class:`AtariBatchedEnv` with ``N = 1``).

    For single-environment uses (``registry.make_env``, ``env_spec``); actors step many
    games at once through :func:`make_batched_atari`. Whole-game statistics are the
    attributes ``game_over`` and ``game_reward`` of the last step.
    """

    def __init__(self, target: str, seed: int, **kwargs: Any) -> None:
        self._batched = make_batched_atari(target, 1, seed, **kwargs)
        self.game_over = False
        self.game_reward = 0.0

    @property
    def frames_per_step(self) -> int:
        return self._batched.frames_per_step

    def reset(self) -> dm_env.TimeStep:
        return self._timestep(self._batched.reset())

    def step(self, action: Any) -> dm_env.TimeStep:
        return self._timestep(self._batched.step(np.array([int(action)], dtype=np.int64)))

    def _timestep(self, ts: BatchedTimeStep) -> dm_env.TimeStep:
        self.game_over = bool(ts.game_over[0])
        self.game_reward = float(ts.game_reward[0])
        obs = ts.observation[0]
        if ts.step_type[0] == FIRST:
            return dm_env.restart(obs)
        reward = np.float32(ts.reward[0])
        if ts.step_type[0] == MID:
            return dm_env.transition(reward, obs)
        if ts.discount[0] == 0.0:
            return dm_env.termination(reward, obs)
        return dm_env.truncation(reward, obs)

    def observation_spec(self) -> specs.BoundedArray:
        shape = self._batched.observation_shape
        return specs.BoundedArray(shape, np.uint8, 0, 255, name="observation")

    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(self._batched.num_actions, dtype=np.int64, name="action")

    def reward_spec(self) -> specs.Array:
        return specs.Array((), np.float32, name="reward")

    def discount_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((), np.float32, 0.0, 1.0, name="discount")

    def close(self) -> None:
        self._batched.close()
