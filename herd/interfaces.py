"""The small transport-agnostic interfaces the actor and learner are written against.

Both the in-process classes (``replay_service.table.Table``, ``param_server.store.ParameterStore``)
and the gRPC clients (``replay_service.client``, ``param_server.client``) satisfy these, so
the same actor loop and learner run in ``herd train`` (one process) and in ``herd up`` (a cluster).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Protocol, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class SampledBatch:
    """Items sampled from a table, stacked time-major: every array is ``[T, B, ...]``."""

    keys: np.ndarray  # uint64 [B]
    probabilities: np.ndarray  # float64 [B]: probability each item had of being sampled
    data: dict[str, np.ndarray]
    table_size: int = 0


@dataclasses.dataclass(frozen=True)
class Params:
    """A versioned set of named weights."""

    version: int
    tensors: dict[str, np.ndarray]


class TrajectoryWriter(Protocol):
    """Where actors send trajectories (a replay table or a replay client)."""

    def insert(
        self,
        items: Mapping[str, np.ndarray],
        priorities: Optional[Sequence[float] | np.ndarray] = None,
        timeout: Optional[float] = None,
    ) -> Sequence[int]:
        """Inserts ``N`` items given stacked as ``[T, N, ...]`` arrays (blocks while rate limited).

        Returns the ``N`` keys once the items are stored (the acknowledgement)."""


class BatchSource(Protocol):
    """Where the learner gets batches from (a replay table or a replay client)."""

    def sample(self, batch_size: int, timeout: Optional[float] = None) -> SampledBatch:
        """Returns ``batch_size`` items stacked ``[T, B, ...]`` (blocks while rate limited)."""

    def update_priorities(self, keys: Sequence[int], priorities: Sequence[float] | np.ndarray) -> None:
        """Sets new priorities for the items with these keys (unknown keys are ignored)."""


class VariableSource(Protocol):
    """Where actors pull weights from (a parameter store or a parameter client)."""

    def fetch(self, name: str, min_version: int = 0) -> Optional[Params]:
        """Latest ``Params`` of ``name`` if its version is ``>= min_version``, else ``None``."""


class VariablePublisher(Protocol):
    """Where the learner publishes weights to."""

    def publish(self, name: str, version: int, tensors: Mapping[str, np.ndarray]) -> None:
        """Stores a new version; raises ``StaleVersionError`` unless ``version`` increases."""


class StaleVersionError(ValueError):
    """A publish whose version does not increase (FAILED_PRECONDITION on the wire)."""


class RateLimitTimeout(TimeoutError):
    """A rate-limited insert or sample that timed out (DEADLINE_EXCEEDED on the wire)."""
