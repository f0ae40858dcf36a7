"""Table checkpoint files: one ``.npz`` of plain arrays plus a JSON header, never pickle.

The header (``format``, ``format_version``, table settings, counters, limiter state, the
write-ahead log position it covers, and a CRC32 of every array's bytes) is stored as a
``uint8`` array named ``header``; every other entry is a numeric array. Version 2 added
``checksums`` and ``wal_position``; version 1 files are still read. Files
are written atomically (temporary file in the same directory, fsync, ``os.replace``,
fsync of the directory), so a crash leaves either the old checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
import zlib
import zipfile
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from herd.fsutil import atomic_write

from replay_service.signature import Signature, SignatureSpec, frozen_copy

FORMAT = "herd.replay.table"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

PathLike = Union[str, "os.PathLike[str]"]


def checkpoint_path(directory: str, table: str) -> str:
    """Where table ``table`` is checkpointed inside ``directory``."""
    return os.path.join(directory, f"{table}.npz")


class CheckpointError(ValueError):
    """A checkpoint file that is not a table checkpoint, of another format version, or corrupt."""


def write(path: PathLike, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically writes ``header`` (JSON-able; format fields are added) and ``arrays`` to ``path``."""
    if "header" in arrays:
        raise ValueError("arrays: the name 'header' is reserved")
    checksums = {name: _crc(array) for name, array in arrays.items()}
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **header, "checksums": checksums}
    header_bytes = np.frombuffer(json.dumps(full).encode("utf-8"), dtype=np.uint8)
    with atomic_write(os.fspath(path), uncached=True) as f:  # read back only after a restart
        np.savez(f, allow_pickle=False, header=header_bytes, **arrays)


def read(path: PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a checkpoint: ``(header, arrays)``; CheckpointError on a foreign file or version."""
    try:
        npz = np.load(os.fspath(path), allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable table checkpoint ({e})") from e
    with npz:
        if "header" not in npz.files:
            raise CheckpointError(f"{path}: not a table checkpoint (no header)")
        try:
            header = json.loads(npz["header"].tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: unreadable checkpoint header ({e})") from e
        found = header.get("format") if isinstance(header, dict) else None
        if found != FORMAT:
            raise CheckpointError(f"{path}: not a table checkpoint (format {found!r})")
        version = header.get("format_version")
        if version not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{path}: checkpoint format_version {version!r} is not supported "
                f"(this build reads versions {list(READABLE_VERSIONS)})"
            )
        try:
            arrays = {name: npz[name] for name in npz.files if name != "header"}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # e.g. an object array (needs pickle)
            raise CheckpointError(f"{path}: unreadable checkpoint array ({e})") from e
    if version >= 2:
        checksums = header.get("checksums")
        if not isinstance(checksums, dict) or set(checksums) != set(arrays):
            raise CheckpointError(f"{path}: checksums of {sorted(checksums or {})}, arrays {sorted(arrays)}")
        for name, array in arrays.items():
            if _crc(array) != checksums[name]:
                raise CheckpointError(f"{path}: array {name!r} fails its CRC32 check (corrupt checkpoint)")
    return header, arrays


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


# One row per item: (key, priority, times_sampled, data).
Row = tuple[int, float, int, Mapping[str, np.ndarray]]


def pack_items(rows: Sequence[Row], signature: Optional[Signature]) -> dict[str, np.ndarray]:
    """Column arrays of a table's items: keys, priorities, times sampled, ``field_j`` [size, T, ...].

    Field ``j`` is the ``j``-th field of the signature (names live in the header, so any
    field name is safe).
    """
    arrays = {
        "keys": np.array([r[0] for r in rows], dtype=np.uint64),
        "priorities": np.array([r[1] for r in rows], dtype=np.float64),
        "times_sampled": np.array([r[2] for r in rows], dtype=np.int64),
    }
    for j, (name, (dtype, shape)) in enumerate((signature or {}).items()):
        arrays[f"field_{j}"] = np.stack([r[3][name] for r in rows]) if rows else np.empty((0, *shape), dtype)
    return arrays


def unpack_items(arrays: Mapping[str, np.ndarray], signature: Optional[Signature]) -> Iterator[Row]:
    """Inverse of :func:`pack_items`: rows with private, read-only item arrays."""
    keys, priorities, times = (arrays[k].tolist() for k in ("keys", "priorities", "times_sampled"))
    columns = {}
    for j, (name, (dtype, shape)) in enumerate((signature or {}).items()):
        col = arrays[f"field_{j}"]
        if col.dtype != dtype or col.shape != (len(keys), *shape):
            raise CheckpointError(
                f"field {name!r}: stored as {col.dtype} {col.shape}, "
                f"the header says {dtype} {(len(keys), *shape)}"
            )
        columns[name] = col
    for i, (key, priority, times_sampled) in enumerate(zip(keys, priorities, times)):
        yield key, priority, times_sampled, {name: frozen_copy(col[i]) for name, col in columns.items()}


def signature_to_json(signature: Optional[Signature]) -> Optional[dict[str, list[Any]]]:
    """``{field: [dtype string, item shape]}`` (``dtype.str`` keeps the byte order)."""
    if signature is None:
        return None
    return {name: [dtype.str, list(shape)] for name, (dtype, shape) in signature.items()}


def signature_from_json(obj: Optional[Mapping[str, Sequence[Any]]]) -> Optional[SignatureSpec]:
    """Inverse of :func:`signature_to_json`."""
    if obj is None:
        return None
    return {name: (dtype, tuple(shape)) for name, (dtype, shape) in obj.items()}
