"""Item structure checks for tables: field names, dtypes and per-item shapes.

A table's *signature* maps each field to ``(dtype, item_shape)`` where ``item_shape`` is
the shape of one item, ``[T, ...]`` (the batch axis of an insert, ``[T, N, ...]``, removed).
It is given to the table or taken from the first insert; every later insert must match it.
"""

from __future__ import annotations

import dataclasses
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


def check_against(arrays: Mapping[str, np.ndarray], signature: Signature) -> None:
    """Checks a stacked insert's fields, dtypes and item shapes against the table's ``signature``."""
    if arrays.keys() == signature.keys() and all(
        a.dtype == dtype and a.shape[0] == shape[0] and a.shape[2:] == shape[1:]
        for a, (dtype, shape) in zip((arrays[k] for k in signature), signature.values())
    ):
        return  # the common case, decided in one pass; the loop below names what is wrong
    missing = [k for k in signature if k not in arrays]
    if missing:
        raise ValueError(f"items: missing field(s) {missing} of the table signature {list(signature)}")
    extra = [k for k in arrays if k not in signature]
    if extra:
        raise ValueError(f"items: unexpected field(s) {extra}; the table signature has {list(signature)}")
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


@dataclasses.dataclass(frozen=True)
class FrozenBatch:
    """A validated insert the table may keep: ``items[i]`` are item ``i``'s read-only ``[T, ...]`` arrays,
    ``stacked`` the fields as immutable C-contiguous ``[T, N, ...]`` arrays (what the log writes)."""

    items: list[dict[str, np.ndarray]]
    stacked: dict[str, np.ndarray]


def prepare_items(arrays: Mapping[str, np.ndarray], signature: Signature) -> list[dict[str, np.ndarray]]:
    """Checks ``arrays`` against ``signature`` and splits them into ``N`` read-only contiguous items (copies)."""
    check_against(arrays, signature)
    n = next(iter(arrays.values())).shape[1]
    # items[i] = v[:, i] (see herd.types.split_batch), copied: the caller may reuse its buffers.
    return [{name: frozen_copy(arrays[name][:, i]) for name in signature} for i in range(n)]


def freeze_batch(
    arrays: Mapping[str, np.ndarray], signature: Signature, *, share: bool, stacked: bool = True
) -> FrozenBatch:
    """Checks ``arrays`` against ``signature``; returns them as memory no one can change.

    Arrays that are already immutable (read-only views of ``bytes``, as the servicer decodes
    a received request) are kept as they are: no copy. Others are copied once per field.
    With ``share``, items are views into the stacked arrays, so one request's buffer lives
    until its last item is gone (the table asks for this only when a request's items leave
    together or there is one); otherwise each item is copied on its own, as before, and
    ``stacked`` is only built if asked for (a durable table logs it).
    """
    check_against(arrays, signature)
    n = next(iter(arrays.values())).shape[1]
    kept = {}
    for name in signature:
        a = arrays[name]
        kept[name] = a if is_immutable(a) and a.flags.c_contiguous else None
    if share:
        kept = {name: frozen_copy(arrays[name]) if a is None else a for name, a in kept.items()}
        if n == 1:  # v[:, 0] of a [T, 1, ...] array is contiguous: a reshape
            return FrozenBatch([{name: a.reshape(a.shape[:1] + a.shape[2:]) for name, a in kept.items()}], kept)
        return FrozenBatch([{name: a[:, i] for name, a in kept.items()} for i in range(n)], kept)
    items = [{name: frozen_copy(arrays[name][:, i]) for name in signature} for i in range(n)]
    if not stacked:
        return FrozenBatch(items, {})
    for name, a in kept.items():
        if a is None:  # the log needs the stacked bytes too: stacked from the private copies
            a = kept[name] = np.stack([item[name] for item in items], axis=1)
            a.flags.writeable = False
    return FrozenBatch(items, kept)


def is_immutable(a: np.ndarray) -> bool:
    """Whether nothing can change ``a``'s memory: a read-only view whose memory is a ``bytes`` object."""
    if a.flags.writeable:
        return False
    base = a.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return type(base) is bytes


def frozen_copy(x: np.ndarray) -> np.ndarray:
    """A C-contiguous, read-only copy (stored items are never mutated, so readers need no lock)."""
    y = np.array(x, order="C")
    y.flags.writeable = False
    return y
