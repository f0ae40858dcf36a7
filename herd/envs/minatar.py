"""MinAtar games (Young & Tian 2019) behind the ``dm_env`` interface.

Data flow: ``registry.make_env("minatar:breakout")`` builds a :class:`MinAtarEnv`; actors
step ``N`` of them through ``batched.SequentialBatchedEnv`` (MinAtar is pure Python and
fast, ~300k raw steps/s, so a loop is enough). Needs ``pip install 'herd[minatar]'``.

Names: ``minatar:<game>[-full]`` for :data:`GAMES`. The game runs with the ``minatar``
package's own defaults: sticky actions with probability 0.1 and difficulty ramping
(keyword arguments ``sticky_action_prob`` and ``difficulty_ramping`` change them). Actions
are the game's minimal set by default; ``-full`` (or ``full_action_space=True``) gives all
six MinAtar actions (no-op, left, up, right, down, fire) for every game, as the MinAtar
paper's agents used and as tasks that share one network need.

Observations: MinAtar's boolean ``[10, 10, C]`` planes become uint8 ``[C, 10, 10]`` (CHW)
with values 0 and 1, which the ``minatar`` and ``mlp`` torsos take as they are. Episodes
end only when the game does (no time limit); a MinAtar step is one frame.
"""

from __future__ import annotations

from typing import Any

import dm_env
import numpy as np
from dm_env import specs

from herd.envs.registry import MissingDependency

GAMES = ("breakout", "asterix", "freeway", "seaquest", "space_invaders")
INSTALL_HINT = "pip install 'herd[minatar]'"


def _import_minatar() -> Any:
    try:
        import minatar
    except ImportError as e:
        raise MissingDependency(f"MinAtar games need minatar ({e}): {INSTALL_HINT}") from None
    return minatar


def parse_minatar_target(target: str) -> tuple[str, bool]:
    """``breakout-full`` -> ``("breakout", True)``; ``ValueError`` naming what is wrong."""
    _import_minatar()
    game, sep, option = target.partition("-")
    if game not in GAMES:
        raise ValueError(f"unknown MinAtar game {game!r}; known: {', '.join(GAMES)}")
    if sep and option != "full":
        raise ValueError(f"minatar:{target}: unknown option {option!r}; the only option is 'full'")
    return game, bool(sep)


class MinAtarEnv(dm_env.Environment):
    """One MinAtar game; ``seed`` seeds its generator (sticky actions and the game's chance)."""

    def __init__(
        self,
        target: str,
        seed: int,
        *,
        full_action_space: bool | None = None,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
    ) -> None:
        minatar = _import_minatar()
        game, full = parse_minatar_target(target)
        if full_action_space is not None:
            full = full_action_space
        self._env = minatar.Environment(
            game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping
        )
        self._env.seed(seed)
        self._actions = (
            list(range(self._env.num_actions())) if full else list(self._env.minimal_action_set())
        )
        h, w, c = self._env.state_shape()
        self._obs_shape = (c, h, w)
        self._needs_reset = True

    @property
    def action_set(self) -> list[int]:
        """MinAtar action of each of our action indices."""
        return list(self._actions)

    def _observation(self) -> np.ndarray:
        # bool [H, W, C] -> uint8 [C, H, W], 0 or 1
        return np.ascontiguousarray(self._env.state().transpose(2, 0, 1), dtype=np.uint8)

    def reset(self) -> dm_env.TimeStep:
        self._env.reset()
        self._needs_reset = False
        return dm_env.restart(self._observation())

    def step(self, action: Any) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        reward, terminal = self._env.act(self._actions[int(action)])
        reward = np.float32(reward)
        if terminal:
            self._needs_reset = True
            return dm_env.termination(reward, self._observation())
        return dm_env.transition(reward, self._observation(), discount=np.float32(1.0))

    def observation_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray(self._obs_shape, np.uint8, 0, 1, name="observation")

    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(len(self._actions), dtype=np.int64, name="action")

    def reward_spec(self) -> specs.Array:
        return specs.Array((), np.float32, name="reward")

    def discount_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((), np.float32, 0.0, 1.0, name="discount")

    def close(self) -> None:
        pass
