"""Which torch device the learner and the actors run on: the run config's ``learner_device``
and ``actor_device`` (``auto | cpu | cuda | cuda:N | mps``), resolved once per process.

Where it sits: the entry points (``herd train``, ``herd up``, ``herd config``, ``herd serve
learner|actor``) call :func:`resolve` and hand the resulting ``torch.device`` to the agent's
updater and policies; library code never reads the strings. ``auto`` means a GPU if torch sees
one (CUDA first, then Apple's MPS), else the CPU. Asking for a device torch does not see is a
``ConfigError`` that lists what it does see, and why CUDA is missing (a CPU build of torch, or
a CUDA build that finds no GPU). See docs/devices.md.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Optional

import torch

from herd import config as hc
from herd import docs_links

if TYPE_CHECKING:
    from herd.run_config import RunConfig

CHOICES = "auto, cpu, cuda, cuda:N or mps"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


def check_name(value: str, key: str) -> None:
    """``ValueError`` naming ``key`` unless ``value`` is one of :data:`CHOICES` (syntax only:
    whether the device is there is for :func:`resolve`, in the process that uses it)."""
    if not isinstance(value, str) or not _PATTERN.match(value):
        raise ValueError(f"config key '{key}': {value!r} is not a device; allowed: {CHOICES}")


@dataclasses.dataclass(frozen=True)
class Visible:
    """What torch sees on this machine (tests pass their own to :func:`resolve`)."""

    torch_version: str
    cuda_build: Optional[str]  # torch.version.cuda: None for a CPU build of torch
    cuda_count: int  # visible CUDA devices (after CUDA_VISIBLE_DEVICES)
    mps: bool

    def devices(self) -> list[str]:
        return ["cpu"] + [f"cuda:{i}" for i in range(self.cuda_count)] + (["mps"] if self.mps else [])

    def describe(self) -> str:
        """``torch 2.13.0+cpu sees: cpu; no CUDA in this build of torch``, for error messages."""
        text = f"torch {self.torch_version} sees: {', '.join(self.devices())}"
        missing = self.why_no_cuda()
        return f"{text}; {missing}" if missing else text

    def why_no_cuda(self) -> str:
        """Why torch sees no CUDA device ('' when it sees one)."""
        if self.cuda_build is None:
            return "no CUDA in this build of torch (a GPU needs torch from a CUDA wheel index)"
        if self.cuda_count == 0:
            return (f"this CUDA {self.cuda_build} build of torch finds no GPU: check the NVIDIA driver, "
                    "CUDA_VISIBLE_DEVICES and, on Kubernetes, the pod's nvidia.com/gpu limit")
        return ""


def visible() -> Visible:
    """What this process's torch sees. Counting CUDA devices creates no CUDA context."""
    mps = getattr(torch.backends, "mps", None)
    return Visible(
        torch_version=torch.__version__,
        cuda_build=torch.version.cuda,
        cuda_count=torch.cuda.device_count() if torch.cuda.is_available() else 0,
        mps=bool(mps is not None and mps.is_available()),
    )


def resolve(requested: str, key: str, seen: Optional[Visible] = None) -> torch.device:
    """The device ``requested`` names on this machine (``auto``: the first GPU, else the CPU).

    Raises ``ConfigError`` naming ``key`` and what torch sees when the device is not there.
    """
    try:
        check_name(requested, key)
    except ValueError as e:
        raise hc.ConfigError(str(e), docs_links.DEVICES) from None
    seen = seen or visible()
    if requested == "auto":
        if seen.cuda_count:
            return torch.device("cuda", 0)
        return torch.device("mps") if seen.mps else torch.device("cpu")
    name = "cuda:0" if requested == "cuda" else requested
    if name not in seen.devices():
        raise hc.ConfigError(f"config key '{key}': device {requested!r} is not available; {seen.describe()}",
                             docs_links.DEVICES)
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """A human name for logs and the info metric: the GPU's model, or the device type."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return {"cpu": "cpu", "mps": "Apple MPS"}.get(device.type, device.type)


def run_devices(run: "RunConfig", seen: Optional[Visible] = None) -> dict[str, str]:
    """``{"learner": "cuda:0", "actors": "cpu"}``: the run's devices resolved on this machine
    (what ``herd config`` shows and ``summary.json`` reports). ``ConfigError`` if one is missing."""
    seen = seen or visible()
    return {
        "learner": str(resolve(run.learner_device, "learner_device", seen)),
        "actors": str(resolve(run.actor_device, "actor_device", seen)),
    }


__all__ = ["CHOICES", "Visible", "check_name", "device_name", "resolve", "run_devices", "visible"]


def learner_has_gpu(requested: str, seen: Optional[Visible] = None) -> bool:
    """Whether a learner set to ``requested`` trains on a GPU: ``cuda``/``cuda:N``/``mps`` by the
    setting alone (so every service reading the same config agrees), ``auto`` by what this
    machine sees, ``cpu`` never."""
    if requested == "auto":
        seen = seen or visible()
        return bool(seen.cuda_count or seen.mps)
    return requested != "cpu"
