"""The actor's view of its ``N`` environments: one call steps them all.

Data flow: the actor loop calls ``step(actions)`` with the ``[N]`` actions of its batched
inference and gets a :class:`BatchedTimeStep` of ``[N, ...]`` arrays, which it appends to the
``N`` trajectories it is writing (``herd/types.py``: step types, rewards and discounts
follow ``dm_env``).

Per environment the semantics are exactly ``dm_env``'s: ``FIRST`` (reward 0, discount 1),
then ``MID`` steps (discount 1), then ``LAST`` (discount 0 when terminated, 1 when truncated);
the step after ``LAST`` ignores its action and returns the reset observation as ``FIRST``.
Both implementations below give these semantics:

* :class:`SequentialBatchedEnv` steps ``N`` ``dm_env`` environments in a loop (any registry env);
* :class:`GymVectorBatchedEnv` uses a Gymnasium vector env with ``NEXT_STEP`` autoreset (e.g.
  CartPole's numpy-vectorized ``CartPoleVectorEnv``): the fast path;
* ``atari.AtariBatchedEnv`` runs ``atari:`` games in ale-py's threaded C++ vector env. Its
  episodes may end at a life loss while the game goes on, so its steps also carry
  ``game_over`` and ``game_reward``, from which :class:`EpisodeTracker` reports whole games.

Seeding (:func:`make_batched_env`): the sequential path seeds environment ``i`` with
``seed + i``; the vector path seeds its one shared generator with ``seed`` (Gymnasium vector
envs draw all resets from one ``np_random``), so with ``N == 1`` both paths produce the same
episodes, and for ``N > 1`` they differ in their reset states only. Give actors disjoint seed
ranges, e.g. ``seed = base_seed + actor_index * num_envs``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence

import dm_env
import numpy as np

from herd.envs.registry import ActionSpec, info_from_specs, make_env, parse_env_name
from herd.types import FIRST, LAST, MID

assert (FIRST, MID, LAST) == (0, 1, 2)  # GymVectorBatchedEnv.step computes MID + done


@dataclasses.dataclass(frozen=True, slots=True)
class BatchedTimeStep:
    """One step of ``N`` environments (fresh arrays on every call; safe to keep)."""

    step_type: np.ndarray  # uint8 [N]: FIRST / MID / LAST
    reward: np.ndarray  # float32 [N]: 0 at FIRST
    discount: np.ndarray  # float32 [N]: 1 at FIRST, 0 at terminated LAST, 1 at truncated LAST
    observation: np.ndarray  # [N, *observation_shape]
    # Whole-game statistics, for envs whose learning episodes are shorter than a game
    # (Atari's life-loss episodes, herd/envs/atari.py); None elsewhere, where every LAST
    # ends a game and ``reward`` is its score change. EpisodeTracker reads them.
    game_over: np.ndarray | None = None  # bool [N]: a whole game ended on this step
    game_reward: np.ndarray | None = None  # float32 [N]: score change, also on FIRST steps


class BatchedEnv(Protocol):
    """``N`` environments stepped together (see the module docstring for the semantics)."""

    @property
    def num_envs(self) -> int: ...

    @property
    def observation_shape(self) -> tuple[int, ...]: ...

    @property
    def observation_dtype(self) -> np.dtype: ...

    @property
    def num_actions(self) -> int: ...

    @property
    def action_spec(self) -> ActionSpec: ...

    def reset(self) -> BatchedTimeStep:
        """Resets every environment: all ``FIRST``."""
        ...

    def step(self, actions: np.ndarray) -> BatchedTimeStep:
        """Applies ``actions`` (int64 ``[N]``, or ``[N, *shape]`` floats for continuous actions); environments that were at ``LAST`` reset instead."""
        ...

    def close(self) -> None: ...


def check_actions(actions: np.ndarray, num_envs: int, spec: ActionSpec | None = None) -> np.ndarray:
    """Discrete actions as int64 ``[N]``; continuous ones (``spec``) as ``[N, *shape]`` floats."""
    actions = np.asarray(actions)
    if spec is not None and not spec.discrete:
        if actions.shape != (num_envs, *spec.shape) or actions.dtype.kind != "f":
            raise ValueError(
                f"actions must be a float array of shape {(num_envs, *spec.shape)}, got {actions.dtype} {actions.shape}"
            )
        return actions.astype(spec.dtype, copy=False)
    if actions.shape != (num_envs,) or actions.dtype.kind not in "iu":
        raise ValueError(
            f"actions must be an integer array of shape ({num_envs},), "
            f"got {actions.dtype} {actions.shape}"
        )
    return actions.astype(np.int64, copy=False)


class SequentialBatchedEnv:
    """``N`` ``dm_env`` environments stepped one after another (works for any registry env)."""

    def __init__(self, envs: Sequence[dm_env.Environment], task: str = "") -> None:
        if not envs:
            raise ValueError("SequentialBatchedEnv needs at least one environment")
        self._envs = list(envs)
        info = info_from_specs(task, envs[0].observation_spec(), envs[0].action_spec())
        for i, env in enumerate(self._envs[1:], start=1):
            other = info_from_specs(task, env.observation_spec(), env.action_spec())
            if other != info:
                raise ValueError(f"environment {i} has specs {other}, environment 0 has {info}")
        self._info = info
        self._started = False

    @property
    def envs(self) -> list[dm_env.Environment]:
        return self._envs

    @property
    def num_envs(self) -> int:
        return len(self._envs)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self._info.observation_shape

    @property
    def observation_dtype(self) -> np.dtype:
        return self._info.observation_dtype

    @property
    def num_actions(self) -> int:
        return self._info.num_actions

    @property
    def action_spec(self) -> ActionSpec:
        return self._info.action_spec

    def reset(self) -> BatchedTimeStep:
        self._started = True
        return self._stack([env.reset() for env in self._envs])

    def step(self, actions: np.ndarray) -> BatchedTimeStep:
        spec = self._info.action_spec
        actions = check_actions(actions, len(self._envs), spec)
        if not self._started:
            return self.reset()
        per_env = actions.tolist() if spec.discrete else list(actions)
        return self._stack([env.step(a) for env, a in zip(self._envs, per_env)])

    def _stack(self, steps: list[dm_env.TimeStep]) -> BatchedTimeStep:
        # dm_env FIRST steps carry reward = discount = None: they become 0 and 1.
        return BatchedTimeStep(
            step_type=np.array([ts.step_type for ts in steps], dtype=np.uint8),
            reward=np.array(
                [0.0 if ts.reward is None else ts.reward for ts in steps], dtype=np.float32
            ),
            discount=np.array(
                [1.0 if ts.discount is None else ts.discount for ts in steps], dtype=np.float32
            ),
            observation=np.stack([ts.observation for ts in steps]).astype(
                self._info.observation_dtype, copy=False
            ),
        )

    def close(self) -> None:
        for env in self._envs:
            env.close()


class UnsupportedVectorEnv(ValueError):
    """The Gymnasium id has no vector env we can use (no vector entry point, or not NEXT_STEP)."""


class GymVectorBatchedEnv:
    """A Gymnasium native vector env (``vector_entry_point``) with ``NEXT_STEP`` autoreset.

    With ``NEXT_STEP`` autoreset, the step after a done ignores its action and returns the
    reset observation with reward 0 and both flags false: exactly ``dm_env``'s step after
    ``LAST``, which we mark ``FIRST`` by remembering which environments were done.
    """

    def __init__(self, gym_id: str, num_envs: int, seed: int, **kwargs: Any) -> None:
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        try:
            env = gym.make_vec(
                gym_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
            )
        except gym.error.Error as e:
            raise UnsupportedVectorEnv(f"gym:{gym_id} has no usable vector entry point: {e}") from e
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.NEXT_STEP:
            env.close()
            raise UnsupportedVectorEnv(
                f"gym:{gym_id} vector env autoresets with {mode!r}; NEXT_STEP is required"
            )
        action_space = env.single_action_space
        if not isinstance(action_space, gym.spaces.Discrete) or int(action_space.start) != 0:
            env.close()
            raise ValueError(
                f"gym:{gym_id}: only Discrete(n) action spaces are supported, got {action_space!r}"
            )
        obs_space = env.single_observation_space
        if not isinstance(obs_space, gym.spaces.Box):
            env.close()
            raise ValueError(
                f"gym:{gym_id}: only Box observations are supported, got {obs_space!r}"
            )
        self._env = env
        self._num_envs = num_envs
        self._num_actions = int(action_space.n)
        self._obs_shape = tuple(obs_space.shape)
        # Same cast as wrappers.SinglePrecision on the sequential path.
        self._obs_dtype = np.dtype(np.float32 if obs_space.dtype == np.float64 else obs_space.dtype)
        self._seed: int | None = seed
        self._started = False
        self._was_done = np.zeros(num_envs, dtype=bool)  # done on the previous step
        self._any_was_done = False

    @property
    def num_envs(self) -> int:
        return self._num_envs

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self._obs_shape

    @property
    def observation_dtype(self) -> np.dtype:
        return self._obs_dtype

    @property
    def num_actions(self) -> int:
        return self._num_actions

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec.discrete_actions(self._num_actions)

    def reset(self) -> BatchedTimeStep:
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None  # later resets continue the generator
        self._started = True
        self._was_done = np.zeros(self._num_envs, dtype=bool)
        self._any_was_done = False
        n = self._num_envs
        return BatchedTimeStep(
            step_type=np.full(n, FIRST, dtype=np.uint8),
            reward=np.zeros(n, dtype=np.float32),
            discount=np.ones(n, dtype=np.float32),
            observation=np.array(obs, dtype=self._obs_dtype),
        )

    def step(self, actions: np.ndarray) -> BatchedTimeStep:
        actions = check_actions(actions, self._num_envs)
        if not self._started:
            return self.reset()
        obs, reward, terminated, truncated, _ = self._env.step(actions)
        terminated = np.array(terminated, dtype=bool)  # copies: the env may reuse its buffers
        done = terminated | np.asarray(truncated, dtype=bool)
        reward = np.array(reward, dtype=np.float32)
        first = self._was_done
        if self._any_was_done:
            # NEXT_STEP envs already report reward 0 and no flags on their reset step; we
            # enforce it rather than trust every vector env.
            terminated &= ~first
            done &= ~first
            reward[first] = 0.0
        step_type = done + np.uint8(MID)  # MID = 1, LAST = 2
        if self._any_was_done:
            step_type[first] = FIRST
        self._was_done = done
        self._any_was_done = bool(done.any())
        return BatchedTimeStep(
            step_type=step_type,
            reward=reward,
            discount=(~terminated).astype(np.float32),
            observation=np.array(obs, dtype=self._obs_dtype),
        )

    def close(self) -> None:
        self._env.close()


def _gym_vector_entry_point(gym_id: str) -> Any:
    import gymnasium as gym

    return gym.spec(gym_id.split(":", 1)[-1]).vector_entry_point


def make_batched_env(
    name: str,
    num_envs: int,
    seed: int,
    vectorized: bool | None = None,
    **kwargs: Any,
) -> BatchedEnv:
    """``num_envs`` copies of environment ``name`` for one actor.

    ``vectorized=None`` takes the Gymnasium vector path when ``name`` is a ``gym:`` id with a
    ``vector_entry_point`` and ``NEXT_STEP`` autoreset, else the sequential path; ``True``
    forces the vector path (``ValueError`` when unavailable), ``False`` the sequential one.
    Seeds: see the module docstring. ``kwargs`` go to each environment's constructor.

    On CartPole the vector path pays ~35 us per call whatever ``N``: it beats the sequential
    one from ``N = 4`` on (``benchmarks/env_step_rate.py``); actors run 16 or more envs.
    ``atari:`` games always take ale-py's vector env (``vectorized`` is ignored for them).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    parsed = parse_env_name(name)
    if parsed.scheme == "atari":
        from herd.envs.atari import make_batched_atari

        return make_batched_atari(parsed.target, num_envs, seed, **kwargs)
    if vectorized is not False:
        has_vector = parsed.scheme == "gym" and _gym_vector_entry_point(parsed.target) is not None
        if vectorized and not has_vector:
            raise UnsupportedVectorEnv(f"{name!r} has no Gymnasium vector entry point")
        if has_vector:
            try:
                return GymVectorBatchedEnv(parsed.target, num_envs, seed, **kwargs)
            except UnsupportedVectorEnv:
                if vectorized:
                    raise
    envs = [make_env(name, seed + i, **kwargs) for i in range(num_envs)]
    return SequentialBatchedEnv(envs, task=name)


class EpisodeTracker:
    """Returns and lengths of the episodes of ``N`` environments, fed one BatchedTimeStep at a time.

    Length counts transitions (non-``FIRST`` steps), so a CartPole-v1 episode that reaches the
    limit has length 500 and return 500.0. An environment first seen mid-episode counts from there.

    When steps carry ``game_over`` (Atari, whose learning episodes end at each life loss), an
    episode here is a whole game: it ends where ``game_over`` is set, and its return sums
    ``game_reward`` over all its lives, the no-op steps between them included.
    """

    def __init__(self, num_envs: int) -> None:
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._game_ended = np.ones(num_envs, dtype=bool)  # the next FIRST starts a new game

    def update(self, ts: BatchedTimeStep) -> list[tuple[int, float, int]]:
        """``(env_index, return, length)`` of every episode (or whole game) that ended on this step."""
        first = ts.step_type == FIRST
        if ts.game_over is None:
            starts, ended, reward = first, ts.step_type == LAST, ts.reward
        else:
            starts = first & self._game_ended
            ended = ts.game_over
            reward = ts.reward if ts.game_reward is None else ts.game_reward
            self._game_ended = ended.copy()
        self._returns[starts] = 0.0
        self._lengths[starts] = 0
        self._returns[~starts] += reward[~starts]
        self._lengths[~first] += 1
        return [(int(i), float(self._returns[i]), int(self._lengths[i])) for i in np.flatnonzero(ended)]
