"""Small torch helpers every agent's acting and learning halves share."""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import torch


def as_tensor(array: np.ndarray, dtype: Any = None) -> torch.Tensor:
    """A torch view of a batch field; batches decoded off the wire are read-only, so those are copied."""
    array = np.asarray(array, dtype=dtype)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


def weights_of(network: torch.nn.Module) -> dict[str, np.ndarray]:
    """The network's state as numpy arrays (what the learner publishes)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in network.state_dict().items()}


def load_weights(network: torch.nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Loads published weights (all of them: ``strict``)."""
    with warnings.catch_warnings():
        # Published arrays are read-only and shared; load_state_dict copies them.
        warnings.simplefilter("ignore", UserWarning)
        state = {k: torch.as_tensor(v) for k, v in weights.items()}
    network.load_state_dict(state, strict=True)
