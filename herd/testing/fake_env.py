"""A deterministic ``dm_env`` environment for tests (``fake:<preset>`` in the env registry).

Everything it emits is a function of the step index ``t`` within the episode (0 at ``FIRST``),
the episode index and the seed, so tests can predict every step exactly:

* observation: ``obs.flat = [t, episode, seed, t, t, ...]`` (truncated to ``obs_shape``);
* reward on arriving at ``t + 1`` after action ``a`` at ``t``: ``reward_fn(t, a)``, by default
  ``1.0 if a == t % num_actions else 0.0``;
* the episode ends after ``episode_length`` transitions with ``LAST``: discount 0 when
  ``ending == "terminate"``, 1 when ``ending == "truncate"``. With ``random_length`` each
  episode's length is drawn from ``[1, episode_length]`` by a generator seeded with ``seed``.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import dm_env
import numpy as np
from dm_env import specs

RewardFn = Callable[[int, int], float]


def default_reward(t: int, action: int, num_actions: int) -> float:
    """1 when the action taken at step ``t`` equals ``t % num_actions``, else 0."""
    return 1.0 if action == t % num_actions else 0.0


class FakeEnv(dm_env.Environment):
    """Deterministic episodic environment with discrete actions (see the module docstring)."""

    def __init__(
        self,
        episode_length: int = 5,
        obs_shape: tuple[int, ...] = (4,),
        num_actions: int = 2,
        ending: Literal["terminate", "truncate"] = "terminate",
        reward_fn: RewardFn | None = None,
        seed: int = 0,
        random_length: bool = False,
        obs_dtype: Any = np.float32,
    ) -> None:
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}")
        if ending not in ("terminate", "truncate"):
            raise ValueError(f"ending must be 'terminate' or 'truncate', got {ending!r}")
        self._max_length = episode_length
        self._obs_shape = tuple(obs_shape)
        self._num_actions = num_actions
        self._ending = ending
        self._reward_fn = reward_fn
        self._seed = seed
        self._random_length = random_length
        self._obs_dtype = np.dtype(obs_dtype)
        self._rng = np.random.default_rng(seed)
        self._t = 0
        self._episode = -1
        self._length = episode_length
        self._needs_reset = True
        self.actions: list[int] = []  # every action that was applied (not the ignored ones)

    def _observation(self) -> np.ndarray:
        obs = np.full(self._obs_shape, self._t, dtype=self._obs_dtype)
        flat = obs.reshape(-1)
        if flat.size > 1:
            flat[1] = self._episode
        if flat.size > 2:
            flat[2] = self._seed
        return obs

    def reset(self) -> dm_env.TimeStep:
        self._episode += 1
        self._t = 0
        self._needs_reset = False
        if self._random_length:
            self._length = int(self._rng.integers(1, self._max_length + 1))
        return dm_env.restart(self._observation())

    def step(self, action: Any) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        a = int(action)
        if not 0 <= a < self._num_actions:
            raise ValueError(f"action {a} out of range [0, {self._num_actions})")
        self.actions.append(a)
        if self._reward_fn is None:
            reward = default_reward(self._t, a, self._num_actions)
        else:
            reward = float(self._reward_fn(self._t, a))
        self._t += 1
        if self._t < self._length:
            return dm_env.transition(reward, self._observation())
        self._needs_reset = True
        if self._ending == "terminate":
            return dm_env.termination(reward, self._observation())
        return dm_env.truncation(reward, self._observation())

    def observation_spec(self) -> specs.Array:
        return specs.Array(shape=self._obs_shape, dtype=self._obs_dtype, name="observation")

    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(num_values=self._num_actions, dtype=np.int64, name="action")


# Presets reachable as ``fake:<name>``; keyword arguments to ``make_env`` override them.
FAKE_ENVS: dict[str, dict[str, Any]] = {
    "terminating": {"ending": "terminate"},
    "truncating": {"ending": "truncate"},
    "random_length": {"ending": "terminate", "random_length": True, "episode_length": 8},
}


def make_fake_env(name: str, seed: int, **kwargs: Any) -> FakeEnv:
    """Builds the ``fake:<name>`` preset with ``kwargs`` overriding its parameters."""
    if name not in FAKE_ENVS:
        raise ValueError(f"unknown fake env {name!r}; known: {sorted(FAKE_ENVS)}")
    return FakeEnv(**{**FAKE_ENVS[name], **kwargs, "seed": seed})
