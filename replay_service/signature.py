"""Item structure checks for tables: field names, dtypes and per-item shapes.

A table's *signature* maps each field to ``(dtype, item_shape)`` where ``item_shape`` is
the shape of one item, ``[T, ...]`` (the batch axis of an insert, ``[T, N, ...]``, removed).
It is given to the table or taken from the first insert; every later insert must match it.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

Signature = dict[str, tuple[np.dtype, tuple[int, ...]]]
SignatureSpec = Mapping[str, tuple[DTypeLike, Sequence[int]]]


def _check_dtype(name: str, dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.names is not None:
        raise ValueError(f"field {name!r}: dtype {dtype} cannot be stored (numeric, bool or bytes only)")


def normalize_signature(spec: Optional[SignatureSpec]) -> Optional[Signature]:
    """Validates a signature spec and returns it with ``np.dtype`` and int tuples."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"signature: expected a non-empty mapping name -> (dtype, item_shape), got {spec!r}")
    out: Signature = {}
    for name, entry in spec.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"signature: field names must be non-empty strings, got {name!r}")
        try:
            dtype_like, shape = entry
            dtype = np.dtype(dtype_like)
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            msg = f"field {name!r}: signature entry must be (dtype, item_shape), got {entry!r}"
            raise ValueError(msg) from None
        _check_dtype(name, dtype)
        if len(dims) < 1 or any(d < 0 for d in dims):
            raise ValueError(f"field {name!r}: item_shape must be [T, ...] with dims >= 0, got {dims}")
        out[name] = (dtype, dims)
    return out


def check_batch(items: Mapping[str, ArrayLike]) -> tuple[dict[str, np.ndarray], int]:
    """Validates a stacked insert ``name -> [T, N, ...]``; returns ``(arrays, N)``."""
    if not isinstance(items, Mapping) or not items:
        raise ValueError(
            f"items: expected a non-empty mapping field name -> [T, N, ...] array, got {type(items).__name__}"
        )
    arrays: dict[str, np.ndarray] = {}
    n: Optional[int] = None
    first = ""
    for name, value in items.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"items: field names must be non-empty strings, got {name!r}")
        arr = np.asarray(value)
        _check_dtype(name, arr.dtype)
        if arr.ndim < 2:
            raise ValueError(f"field {name!r}: expected a [T, N, ...] array, got shape {arr.shape}")
        if n is None:
            n, first = arr.shape[1], name
        elif arr.shape[1] != n:
            raise ValueError(f"field {name!r}: N = {arr.shape[1]} items, but field {first!r} has N = {n}")
        arrays[name] = arr
    assert n is not None
    if n < 1:
        raise ValueError(f"field {first!r}: N = 0 items; an insert needs N >= 1")
    return arrays, n


def signature_of(arrays: Mapping[str, np.ndarray]) -> Signature:
    """The signature of a validated stacked insert (its dtypes and per-item shapes)."""
    return {name: (a.dtype, (a.shape[0], *a.shape[2:])) for name, a in arrays.items()}


def prepare_items(arrays: Mapping[str, np.ndarray], signature: Signature) -> list[dict[str, np.ndarray]]:
    """Checks ``arrays`` against ``signature`` and splits them into ``N`` read-only contiguous items."""
    missing = [k for k in signature if k not in arrays]
    if missing:
        raise ValueError(f"items: missing field(s) {missing} of the table signature {list(signature)}")
    extra = [k for k in arrays if k not in signature]
    if extra:
        raise ValueError(f"items: unexpected field(s) {extra}; the table signature has {list(signature)}")
    n = 0
    for name, (dtype, shape) in signature.items():
        a = arrays[name]
        if a.dtype != dtype:
            raise ValueError(f"field {name!r}: dtype {a.dtype} does not match the table signature ({dtype})")
        item_shape = (a.shape[0], *a.shape[2:])
        if item_shape != shape:
            raise ValueError(
                f"field {name!r}: item shape {item_shape} (insert shape {a.shape}) does not match "
                f"the table signature {shape}"
            )
        n = a.shape[1]
    # items[i] = v[:, i] (see herd.types.split_batch), copied: the caller may reuse its buffers.
    return [{name: frozen_copy(arrays[name][:, i]) for name in signature} for i in range(n)]


def frozen_copy(x: np.ndarray) -> np.ndarray:
    """A C-contiguous, read-only copy (stored items are never mutated, so readers need no lock)."""
    y = np.array(x, order="C")
    y.flags.writeable = False
    return y
