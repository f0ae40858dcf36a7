"""Small torch helpers every agent's acting and learning halves share: batches onto the
learner's device, mixed precision, metrics and weights back to the host.

Where the copies happen (docs/devices.md): a sampled batch arrives as numpy arrays, read-only
views over the received message. :func:`batch_to_device` makes the one copy every update
needs anyway (a torch tensor the network can own). On the CPU that copy *is* the tensor, as
it always was. On a CUDA device it goes into page-locked ("pinned") host memory, from which
a ``non_blocking`` copy to the GPU is queued on the stream without the host waiting for it;
the learner service pins in its prefetch thread (:func:`pin_batch`), so the learner's own
loop adds only the host-to-device copy. Weights come back to the host once per publish
(:func:`weights_of`), and an update's scalars in one transfer (:func:`scalars_to_host`).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, ContextManager, Mapping, Optional

import numpy as np
import torch

from herd import config as hc
from herd.interfaces import SampledBatch

PRECISIONS = ("float32", "bfloat16")


def as_tensor(array: np.ndarray, dtype: Any = None) -> torch.Tensor:
    """A torch view of a batch field; batches decoded off the wire are read-only, so those are copied."""
    array = np.asarray(array, dtype=dtype)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a numpy dtype (``np.uint8`` -> ``torch.uint8``)."""
    return torch.from_numpy(np.empty(0, dtype)).dtype


def pinned_copy(array: np.ndarray) -> torch.Tensor:
    """``array`` copied into pinned host memory (needs a CUDA build with a GPU), or itself if it is pinned."""
    array = np.asarray(array)
    if array.flags.writeable and array.flags.c_contiguous:
        view = torch.from_numpy(array)
        if view.is_pinned():  # pinned by pin_batch in the prefetch thread
            return view
    pinned = torch.empty(array.shape, dtype=torch_dtype(array.dtype), pin_memory=True)
    np.copyto(pinned.numpy(), array)
    return pinned


def pin_batch(batch: SampledBatch) -> SampledBatch:
    """The batch with every field copied into pinned host memory (numpy views that keep it alive).

    The learner service runs this in its prefetch thread when the learner is on a CUDA device,
    so the copy overlaps the current update instead of preceding the next one.
    """
    data = {name: pinned_copy(array).numpy() for name, array in batch.data.items()}
    return SampledBatch(batch.keys, batch.probabilities, data, batch.table_size)


def batch_to_device(
    data: Mapping[str, np.ndarray], device: torch.device, dtypes: Mapping[str, Optional[Any]]
) -> dict[str, torch.Tensor]:
    """The fields named in ``dtypes`` as tensors on ``device``, each converted to its numpy dtype
    (``None``: kept), copied once.

    CPU: :func:`as_tensor`, exactly as before devices existed (no extra copy). CUDA: a pinned
    copy (none if already pinned) and a ``non_blocking`` transfer of the field as it is stored
    (uint8 frames stay small), converted on the device. Other devices (MPS): a plain copy.
    """
    out: dict[str, torch.Tensor] = {}
    for name, dtype in dtypes.items():
        array = data[name]
        if device.type == "cpu":
            out[name] = as_tensor(array, dtype)
            continue
        if device.type == "cuda":
            tensor = pinned_copy(array).to(device, non_blocking=True)
        else:
            tensor = as_tensor(array).to(device)
        out[name] = tensor if dtype is None else tensor.to(torch_dtype(dtype))
    return out


def check_precision(precision: str, device: torch.device) -> None:
    """``ConfigError`` naming ``agent.precision`` unless the updater can run it on ``device``."""
    if precision == "bfloat16":
        if not torch.amp.is_autocast_available(device.type):
            raise hc.ConfigError(f"config key 'agent.precision': no bfloat16 autocast on {device}")
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise hc.ConfigError(f"config key 'agent.precision': {torch.cuda.get_device_name(device)} ({device}) "
                                 "does not support bfloat16; use float32")


def mixed_precision(precision: str, device: torch.device) -> ContextManager[Any]:
    """The forward pass's context: bfloat16 autocast on ``device``, or nothing for float32.

    Only forward passes run under it; their outputs are cast back to float32 before any loss,
    V-trace or TD target, and the parameters, gradients and optimizer state stay float32.
    """
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def scalars_to_host(values: Mapping[str, Any]) -> dict[str, float]:
    """An update's scalar metrics as floats, the tensors among them in one device-to-host copy
    (one synchronisation per update on a GPU instead of one per metric)."""
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in values.items() if k not in tensors}
    if tensors:
        # float64 holds every float32 value exactly: the floats equal float(tensor) one by one.
        stacked = torch.stack([t.detach().reshape(()).to(torch.float64) for t in tensors.values()])
        out.update(zip(tensors, stacked.cpu().tolist()))
    return {k: out[k] for k in values}


def weights_of(network: torch.nn.Module) -> dict[str, np.ndarray]:
    """The network's state as numpy arrays (what the learner publishes), one copy each:
    a device-to-host copy on a GPU, a host copy on the CPU (the optimizer updates in place)."""
    out = {}
    for k, v in network.state_dict().items():
        v = v.detach()
        out[k] = v.numpy().copy() if v.device.type == "cpu" else v.cpu().numpy()
    return out


def load_weights(network: torch.nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Loads published weights (all of them: ``strict``), onto whatever device the network is on."""
    with warnings.catch_warnings():
        # Published arrays are read-only and shared; load_state_dict copies them.
        warnings.simplefilter("ignore", UserWarning)
        state = {k: torch.as_tensor(v) for k, v in weights.items()}
    network.load_state_dict(state, strict=True)
