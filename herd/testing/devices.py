"""Devices in tests: which ones this machine has, a marker for GPU-only tests, and a way to
write a checkpoint that says it was saved on a GPU without having one.

Tests that need a GPU are the only ones allowed to skip; they carry :func:`requires_cuda`, which
says why they did not run.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import serialization

from herd import devices


def available() -> list[str]:
    """Every device torch sees here: ``["cpu"]`` on the development machine, plus ``cuda:0``... on a GPU one."""
    return devices.visible().devices()


def requires_cuda() -> Any:
    """The pytest mark of a test that needs a CUDA GPU: skipped here, with what torch sees as the reason."""
    import pytest  # herd.testing ships in the image, pytest does not: imported by the tests that use it

    return pytest.mark.skipif(not torch.cuda.is_available(), reason=f"needs a CUDA GPU; {devices.visible().describe()}")


@contextlib.contextmanager
def saved_as(location: str) -> Iterator[None]:
    """While active, ``torch.save`` records every CPU tensor as stored on ``location`` (e.g. ``cuda:0``),
    as a checkpoint written on that device does; loading it back needs ``map_location`` on a
    machine without that device. Uses torch's own tagger registry (``register_package``)."""

    def tagger(storage: object) -> str | None:
        device = getattr(storage, "device", None)
        return location if device is not None and device.type == "cpu" else None

    def no_deserializer(storage: object, location_: str) -> None:
        return None  # loading is left to torch's own deserializers

    serialization.register_package(0, tagger, no_deserializer)  # priority 0: before torch's cpu tagger (10)
    try:
        yield
    finally:
        serialization._package_registry[:] = [p for p in serialization._package_registry if p[1] is not tagger]
