"""What an agent plug-in offers the generic actor and learner services.

An agent is two halves that meet only through named weights:

* a ``Policy`` (actor side): batched inference for N environments, returning
  actions and whatever the learner needs recorded (behaviour logits);
* an ``Updater`` (learner side): one gradient step on a sampled batch (with its keys
  and sampling probabilities), returning metrics and, for prioritized replay, new
  priorities; and the weights to publish.

What else an agent declares (its tables, adder, presets) is in ``herd.agents.spec``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol

import numpy as np

from herd.envs.registry import EnvInfo  # re-exported: what an agent builds its network from
from herd.interfaces import SampledBatch, VariableSource

__all__ = ["EnvInfo", "Policy", "PolicyOutput", "SampledBatch", "load_newer", "UpdateResult", "Updater"]


@dataclasses.dataclass
class PolicyOutput:
    """One batched acting step: actions ``[N, *action_shape]`` and extras to record ``name -> [N, ...]``."""

    action: np.ndarray
    extras: dict[str, np.ndarray]


class Policy(Protocol):
    """The acting half of an agent (lives in the actor)."""

    version: int

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        """Recurrent core state for ``batch_size`` fresh environments (empty without a core)."""

    def step(
        self, observation: np.ndarray, first: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[PolicyOutput, tuple[np.ndarray, ...]]:
        """Acts on ``[N, ...]`` observations; ``first`` [N] marks episode starts."""

    def load(self, version: int, weights: Mapping[str, np.ndarray]) -> None:
        """Switches to published weights."""


def load_newer(policy: "Policy", variables: VariableSource, name: str) -> bool:
    """Loads the newest published weights ``name`` into ``policy`` if they are newer than its own."""
    params = variables.fetch(name, min_version=policy.version + 1)
    if params is None:
        return False
    policy.load(params.version, params.tensors)
    return True


@dataclasses.dataclass
class UpdateResult:
    """What one update returns: scalar metrics (all exported: logs, TensorBoard, Prometheus;
    keys ending in ``_loss`` as loss terms) and optional new priorities ``[B]`` for the
    sampled keys, which the learner sends to the replay off its critical path."""

    metrics: dict[str, float]
    priorities: np.ndarray | None = None


class Updater(Protocol):
    """The learning half of an agent (lives in the learner)."""

    def update(self, batch: SampledBatch) -> UpdateResult:
        """One gradient step on a sampled batch (``batch.data`` is time-major ``[T, B, ...]``)."""

    def weights(self) -> dict[str, np.ndarray]:
        """The weights actors need, as numpy arrays."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (model, optimizer, schedule), ``torch.save``-able."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores what ``state_dict`` returned."""
