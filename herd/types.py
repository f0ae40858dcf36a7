"""Shapes and field names shared by every part of Herd.

Time-major everywhere: a tensor of per-step data is ``[T, B, ...]`` (time first,
then batch). A *trajectory item* (one unroll of one environment, as stored in a
replay table) is a mapping ``name -> array`` in which **every field has a leading
time axis**: per-step fields are ``[T + 1, ...]`` and per-unroll fields (initial
LSTM state, parameter version) are ``[1, ...]``. Stacking ``B`` items into a batch
therefore always inserts the batch axis at position 1: ``[T + 1, B, ...]``.

Unrolls hold ``T + 1`` steps and consecutive unrolls of one environment overlap by
one step: the last step of an unroll only provides the bootstrap value, and is the
first step of the next unroll.

Step semantics follow ``dm_env``: entry ``t`` holds the observation ``x_t`` with
the reward ``r_t`` and discount ``d_t`` received on arriving at it, its step type,
and the action the behaviour policy took at ``x_t`` with that policy's logits. The
transition ``t -> t + 1`` is real unless entry ``t`` is ``LAST`` (the step after
``LAST`` is the reset, which is not an environment transition).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

# dm_env.StepType values, kept as plain ints so arrays can hold them.
FIRST, MID, LAST = 0, 1, 2

# Per-step fields of a trajectory item, each [T + 1, ...].
OBSERVATION = "observation"
STEP_TYPE = "step_type"  # uint8: FIRST / MID / LAST
REWARD = "reward"  # float32, reward on arriving at x_t (0 at FIRST)
DISCOUNT = "discount"  # float32, env discount on arriving at x_t (1 at FIRST; 0 terminal; 1 truncated)
ACTION = "action"  # int64, action taken at x_t (meaningless at LAST)
BEHAVIOUR_LOGITS = "behaviour_logits"  # float32 [T + 1, A]

# Per-unroll fields, each [1, ...].
PARAM_VERSION = "param_version"  # int64 [1]: version of the weights that acted
CORE_STATE_PREFIX = "core_state/"  # core_state/0, core_state/1 ...: recurrent state at entry 0, [1, H]

Arrays = Mapping[str, np.ndarray]


def stack_items(items: list[Arrays]) -> dict[str, np.ndarray]:
    """Stacks trajectory items ([T+1, ...] each) into a batch ([T+1, B, ...])."""
    if not items:
        raise ValueError("cannot stack zero items")
    keys = items[0].keys()
    return {k: np.stack([it[k] for it in items], axis=1) for k in keys}


def split_batch(batch: Arrays, n: int) -> list[dict[str, np.ndarray]]:
    """Inverse of :func:`stack_items`: ``[T+1, N, ...]`` -> ``N`` items ``[T+1, ...]`` (views)."""
    return [{k: v[:, i] for k, v in batch.items()} for i in range(n)]


@dataclasses.dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode, as reported by an actor."""

    env_steps: int  # global env-step count when the episode ended (as seen by its reporter)
    episode_return: float
    episode_length: int
    task: str
    actor_id: str = ""
