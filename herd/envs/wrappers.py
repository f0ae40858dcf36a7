"""``dm_env`` wrappers applied between an environment and the actor.

Data flow: ``registry.make_env`` wraps every environment in :class:`SinglePrecision`, so the
actor and the wire only ever see float32; :class:`RewardClip` (Atari, DESIGN.md §7) and
:class:`EpisodeStatistics` are optional layers on top.

``FIRST`` steps carry ``reward = discount = None`` (``dm_env.restart``); every wrapper keeps that.
"""

from __future__ import annotations

from typing import Any

import dm_env
import numpy as np
from dm_env import specs


class EnvironmentWrapper(dm_env.Environment):
    """Forwards everything to the wrapped environment; subclasses override what they change."""

    def __init__(self, environment: dm_env.Environment) -> None:
        self._environment = environment

    @property
    def environment(self) -> dm_env.Environment:
        """The wrapped environment."""
        return self._environment

    def reset(self) -> dm_env.TimeStep:
        return self._environment.reset()

    def step(self, action: Any) -> dm_env.TimeStep:
        return self._environment.step(action)

    def observation_spec(self) -> Any:
        return self._environment.observation_spec()

    def action_spec(self) -> Any:
        return self._environment.action_spec()

    def reward_spec(self) -> Any:
        return self._environment.reward_spec()

    def discount_spec(self) -> Any:
        return self._environment.discount_spec()

    def close(self) -> None:
        self._environment.close()

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper (e.g. ``gym_env``).
        if name == "_environment":
            raise AttributeError(name)
        return getattr(self._environment, name)


def _to_single(value: Any) -> Any:
    """float64 arrays and scalars -> float32, inside dicts, lists and tuples too."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32) if value.dtype == np.float64 else value
    if isinstance(value, (float, np.float64)):
        return np.float32(value)
    if isinstance(value, dict):
        return {k: _to_single(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_single(v) for v in value)
    return value


def _spec_to_single(spec: Any) -> Any:
    if isinstance(spec, specs.Array):
        return spec.replace(dtype=np.float32) if spec.dtype == np.float64 else spec
    if isinstance(spec, dict):
        return {k: _spec_to_single(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return type(spec)(_spec_to_single(v) for v in spec)
    return spec


class SinglePrecision(EnvironmentWrapper):
    """Casts float64 observations, rewards and discounts (and their specs) to float32."""

    def reset(self) -> dm_env.TimeStep:
        return self._convert(self._environment.reset())

    def step(self, action: Any) -> dm_env.TimeStep:
        return self._convert(self._environment.step(action))

    @staticmethod
    def _convert(ts: dm_env.TimeStep) -> dm_env.TimeStep:
        return ts._replace(
            observation=_to_single(ts.observation),
            reward=None if ts.reward is None else _to_single(ts.reward),
            discount=None if ts.discount is None else _to_single(ts.discount),
        )

    def observation_spec(self) -> Any:
        return _spec_to_single(self._environment.observation_spec())

    def reward_spec(self) -> Any:
        return _spec_to_single(self._environment.reward_spec())

    def discount_spec(self) -> Any:
        return _spec_to_single(self._environment.discount_spec())


class RewardClip(EnvironmentWrapper):
    """Clips rewards to ``[lo, hi]`` (IMPALA clips Atari rewards to ``[-1, 1]``)."""

    def __init__(self, environment: dm_env.Environment, lo: float = -1.0, hi: float = 1.0) -> None:
        if not lo <= hi:
            raise ValueError(f"RewardClip needs lo <= hi, got lo={lo}, hi={hi}")
        super().__init__(environment)
        self._lo = lo
        self._hi = hi

    def step(self, action: Any) -> dm_env.TimeStep:
        ts = self._environment.step(action)
        if ts.reward is None:
            return ts
        dtype = np.asarray(ts.reward).dtype
        return ts._replace(reward=np.clip(ts.reward, self._lo, self._hi).astype(dtype))

    def reward_spec(self) -> Any:
        spec = self._environment.reward_spec()
        return specs.BoundedArray(
            shape=spec.shape, dtype=spec.dtype, minimum=self._lo, maximum=self._hi, name=spec.name
        )


class EpisodeStatistics(EnvironmentWrapper):
    """Tracks the return and length of the current episode and of the last finished one.

    Length counts transitions (non-``FIRST`` steps): a CartPole episode that lasts until the
    500-step limit has length 500 and return 500.
    """

    def __init__(self, environment: dm_env.Environment) -> None:
        super().__init__(environment)
        self.episode_return = 0.0  # current episode so far
        self.episode_length = 0
        self.last_episode_return: float | None = None  # last finished episode
        self.last_episode_length: int | None = None
        self.episode_count = 0  # finished episodes

    def reset(self) -> dm_env.TimeStep:
        return self._record(self._environment.reset())

    def step(self, action: Any) -> dm_env.TimeStep:
        return self._record(self._environment.step(action))

    def _record(self, ts: dm_env.TimeStep) -> dm_env.TimeStep:
        if ts.first():
            self.episode_return = 0.0
            self.episode_length = 0
            return ts
        self.episode_return += float(ts.reward)
        self.episode_length += 1
        if ts.last():
            self.last_episode_return = self.episode_return
            self.last_episode_length = self.episode_length
            self.episode_count += 1
        return ts
