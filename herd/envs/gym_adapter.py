"""Gymnasium environments behind the ``dm_env`` interface.

Data flow: ``registry.make_env("gym:...")`` builds a :class:`GymEnv`; the actor steps it
(usually through ``batched.SequentialBatchedEnv``) and writes its ``dm_env.TimeStep`` s into
trajectories (see ``herd/types.py`` for the step semantics).

Mapping of Gymnasium's ``(obs, reward, terminated, truncated, info)``:

* ``reset()``                -> ``FIRST`` (reward and discount ``None``, as ``dm_env.restart``);
* not done                   -> ``MID`` with discount 1;
* ``terminated``             -> ``LAST`` with discount 0 (wins when both flags are set);
* ``truncated`` only         -> ``LAST`` with discount 1 (the value of the next state still counts).

After ``LAST`` the next ``step()`` ignores its action and resets (``dm_env`` convention).
"""

from __future__ import annotations

from typing import Any

import dm_env
import gymnasium as gym
import numpy as np
from dm_env import specs


def space_to_spec(space: gym.Space[Any], name: str) -> specs.Array:
    """Converts a Gymnasium ``Box`` or ``Discrete`` space to a ``dm_env`` spec."""
    if isinstance(space, gym.spaces.Box):
        return specs.BoundedArray(
            shape=space.shape, dtype=space.dtype, minimum=space.low, maximum=space.high, name=name
        )
    if isinstance(space, gym.spaces.Discrete):
        if int(space.start) != 0:
            raise NotImplementedError(
                f"{name}: Discrete space with start={int(space.start)} is not supported "
                f"(only Discrete(n, start=0)): {space!r}"
            )
        return specs.DiscreteArray(num_values=int(space.n), dtype=np.int64, name=name)
    raise NotImplementedError(
        f"{name}: Gymnasium space {type(space).__name__} is not supported "
        f"(only Box and Discrete): {space!r}"
    )


class GymEnv(dm_env.Environment):
    """A Gymnasium ``Env`` seen as a ``dm_env.Environment``.

    ``seed`` seeds the first reset and the action space; later resets continue the
    environment's own random stream, so a run is reproducible from ``seed`` alone.
    """

    def __init__(self, env: gym.Env[Any, Any], seed: int | None = None) -> None:
        self._env = env
        self._seed = seed
        self._observation_spec = space_to_spec(env.observation_space, "observation")
        self._action_spec = space_to_spec(env.action_space, "action")
        self._discrete_action = isinstance(env.action_space, gym.spaces.Discrete)
        self._seeded = False
        self._needs_reset = True

    @property
    def gym_env(self) -> gym.Env[Any, Any]:
        """The wrapped Gymnasium environment."""
        return self._env

    def reset(self) -> dm_env.TimeStep:
        if not self._seeded and self._seed is not None:
            obs, _ = self._env.reset(seed=self._seed)
            self._env.action_space.seed(self._seed)
        else:
            obs, _ = self._env.reset()
        self._seeded = True
        self._needs_reset = False
        return dm_env.restart(np.asarray(obs))

    def step(self, action: Any) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        if self._discrete_action:
            action = int(action)
        obs, reward, terminated, truncated, _ = self._env.step(action)
        obs = np.asarray(obs)
        if terminated:
            self._needs_reset = True
            return dm_env.termination(float(reward), obs)
        if truncated:
            self._needs_reset = True
            return dm_env.truncation(float(reward), obs)
        return dm_env.transition(float(reward), obs)

    def observation_spec(self) -> specs.Array:
        return self._observation_spec

    def action_spec(self) -> specs.Array:
        return self._action_spec

    def reward_spec(self) -> specs.Array:
        return specs.Array(shape=(), dtype=np.float64, name="reward")

    def discount_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray(
            shape=(), dtype=np.float64, minimum=0.0, maximum=1.0, name="discount"
        )

    def close(self) -> None:
        self._env.close()
