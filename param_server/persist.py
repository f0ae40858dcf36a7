"""Persistence of the parameter server: the latest version of each name, one file per name.

Where it sits: ``ParameterServicer`` writes every accepted version here before it
acknowledges the publish (so an acknowledged version survives ``kill -9``), and reloads
the directory on start. No pickle: a file is

    magic  b"HERDPRM1"                      8 bytes
    header length (uint32, little-endian)   4 bytes
    CRC32 of the header (uint32, LE)        4 bytes
    header: UTF-8 JSON {format, name, version, published_unix_ms, total_bytes, crc32,
                        tensors: [{name, dtype (tensor.proto enum name), shape}]}
    data: the tensors' bytes concatenated in manifest order (total_bytes; CRC32 in header)

Files are replaced atomically (temp file, fsync, ``os.replace``, fsync of the directory).
A file that fails any check (magic, lengths, either CRC, manifest) is logged and skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import struct
import zlib
from typing import Any
from urllib.parse import quote

from herd.fsutil import atomic_write
from herd.v1 import tensor_pb2
from param_server.chunks import Assembled, ParamsManifest, check_manifest

log = logging.getLogger(__name__)

MAGIC = b"HERDPRM1"
FORMAT = 1
SUFFIX = ".params"
_TMP_PREFIX = ".tmp-"
_PREFIX = struct.Struct("<8sII")  # magic, header length, header CRC32
_MAX_HEADER_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Stored:
    """A version read back from disk."""

    assembled: Assembled
    published_unix_ms: int
    path: str


def file_name(name: str) -> str:
    """The file of parameter set ``name``: readable when short, hashed when long (one per name)."""
    quoted = quote(name, safe="")
    if len(quoted) <= 150:
        return f"n-{quoted}{SUFFIX}"
    return f"h-{hashlib.sha256(name.encode()).hexdigest()}{SUFFIX}"


class ParamsDir:
    """The directory of persisted parameter sets (created if missing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)

    def save(self, assembled: Assembled, published_unix_ms: int) -> str:
        """Writes ``assembled`` as the latest version of its name, atomically; returns the path."""
        manifest = assembled.manifest
        crc = assembled.crc32 if assembled.crc32 is not None else zlib.crc32(assembled.data)
        header = json.dumps(
            {
                "format": FORMAT,
                "name": manifest.name,
                "version": manifest.version,
                "published_unix_ms": published_unix_ms,
                "total_bytes": manifest.total_bytes,
                "crc32": crc,
                "tensors": [
                    {"name": t.name, "dtype": tensor_pb2.DType.Name(t.dtype), "shape": list(t.shape)}
                    for t in manifest.tensors
                ],
            },
            separators=(",", ":"),
        ).encode()
        path = os.path.join(self.path, file_name(manifest.name))
        with atomic_write(path, prefix=_TMP_PREFIX, suffix=SUFFIX) as f:
            f.write(_PREFIX.pack(MAGIC, len(header), zlib.crc32(header)))
            f.write(header)
            f.write(memoryview(assembled.data))
        return path

    def load_all(self) -> list[Stored]:
        """Every valid persisted version (the newest per name); bad files are logged and skipped."""
        latest: dict[str, Stored] = {}
        for entry in sorted(os.listdir(self.path)):
            full = os.path.join(self.path, entry)
            if entry.startswith(_TMP_PREFIX):  # a write interrupted by a crash
                _remove_quietly(full)
                continue
            if not entry.endswith(SUFFIX) or not os.path.isfile(full):
                continue
            try:
                stored = read_file(full)
            except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
                log.warning("skipping unreadable parameter file", extra={"path": full, "error": str(exc)})
                continue
            name = stored.assembled.manifest.name
            if name not in latest or stored.assembled.manifest.version > latest[name].assembled.manifest.version:
                latest[name] = stored
        return list(latest.values())


def read_file(path: str) -> Stored:
    """Reads and checks one file; ``ValueError`` (or ``OSError``) if it is corrupt or truncated."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(_PREFIX.size)
        if len(prefix) != _PREFIX.size:
            raise ValueError(f"truncated: {len(prefix)} bytes")
        magic, header_len, header_crc = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise ValueError(f"not a parameter file (magic {magic!r})")
        if header_len > min(_MAX_HEADER_BYTES, size - _PREFIX.size):
            raise ValueError(f"header length {header_len} does not fit in a {size}-byte file")
        header = f.read(header_len)
        if zlib.crc32(header) != header_crc:
            raise ValueError("header checksum mismatch")
        meta: Any = json.loads(header)
        if not isinstance(meta, dict):
            raise ValueError("header is not a JSON object")
        if meta.get("format") != FORMAT:
            raise ValueError(f"unknown format {meta.get('format')!r}")
        manifest = _manifest(meta)
        total = manifest.total_bytes
        if size != _PREFIX.size + header_len + total:
            raise ValueError(f"file is {size} bytes, expected {_PREFIX.size + header_len + total}")
        sizes = check_manifest(manifest)
        data = bytearray(total)
        if f.readinto(data) != total:
            raise ValueError("truncated data")
    crc = zlib.crc32(data)
    if crc != meta["crc32"]:
        raise ValueError(f"data checksum mismatch ({crc:#010x} != {int(meta['crc32']):#010x})")
    return Stored(Assembled(manifest, sizes, data, crc), int(meta["published_unix_ms"]), path)


def _manifest(meta: dict[str, Any]) -> ParamsManifest:
    manifest = ParamsManifest(name=str(meta["name"]), version=int(meta["version"]),
                              total_bytes=int(meta["total_bytes"]))
    for t in meta["tensors"]:
        spec = manifest.tensors.add(name=str(t["name"]), dtype=tensor_pb2.DType.Value(str(t["dtype"])))
        spec.shape.extend(int(d) for d in t["shape"])
    return manifest


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

