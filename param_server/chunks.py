"""One version of a parameter set as a stream of ``ParamsChunk`` messages (params.proto), both ways.

Where it sits: the client cuts a learner's weights into serialized chunks
(:func:`serialized_chunks`), the servicer reassembles and checks them (:class:`Assembler`),
serializes a version's chunks once for every actor that fetches it, and the client
reassembles them again on fetch.
``param_server.persist`` reuses :func:`check_manifest` for what it reads back from disk.

Every malformed input raises ``ValueError`` (``WireError`` for tensor specs), which the
servicer maps to ``INVALID_ARGUMENT``; a set above the size limit raises
``ResourceExhaustedError``.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Iterator, Literal, Optional, Sequence

import numpy as np

from herd.v1 import params_pb2, tensor_pb2
from herd.wire.codec import ITEMSIZE, WireError, decode_parts, tensor_nbytes, torch_from_parts  # noqa: F401 - ITEMSIZE re-exported
from herd.wire.status import ResourceExhaustedError

ParamsChunk = params_pb2.ParamsChunk
ParamsManifest = params_pb2.ParamsManifest

MAX_NAME_CHARS = 256
"""Longest parameter-set name (it also names the persisted file)."""



def check_name(name: str) -> None:
    """Parameter-set names are non-empty and at most :data:`MAX_NAME_CHARS` characters."""
    if not name:
        raise ValueError("parameter name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"parameter name of {len(name)} characters (at most {MAX_NAME_CHARS})")


def check_manifest(manifest: ParamsManifest, *, max_total_bytes: Optional[int] = None) -> list[int]:
    """Validates a manifest; returns each tensor's byte size, in manifest order.

    Checks: name, version >= 0, tensor names non-empty and unique, dtypes and shapes valid,
    ``total_bytes`` equal to the sum of the tensor sizes, and that sum within
    ``max_total_bytes`` (else ``ResourceExhaustedError``).
    """
    check_name(manifest.name)
    if manifest.version < 0:
        raise ValueError(f"parameters {manifest.name!r}: version must be >= 0, got {manifest.version}")
    seen: set[str] = set()
    sizes: list[int] = []
    total = 0
    for spec in manifest.tensors:
        if not spec.name:
            raise WireError(f"parameters {manifest.name!r}: tensor names must not be empty")
        if spec.name in seen:
            raise WireError(f"parameters {manifest.name!r}: duplicate tensor name {spec.name!r}")
        seen.add(spec.name)
        size = spec_nbytes(spec.dtype, spec.shape, name=spec.name)
        sizes.append(size)
        total += size
        if max_total_bytes is not None and total > max_total_bytes:
            raise ResourceExhaustedError(
                f"parameters {manifest.name!r}: over {total} bytes, the server accepts at most {max_total_bytes}"
            )
    if manifest.total_bytes != total:
        raise ValueError(
            f"parameters {manifest.name!r}: total_bytes {manifest.total_bytes} but the tensors "
            f"of the manifest hold {total} bytes"
        )
    return sizes


def spec_nbytes(dtype: int, shape: Sequence[int], *, name: str = "tensor") -> int:
    """Byte size of a tensor of ``dtype`` and ``shape``, validating both as the codec does."""
    return tensor_nbytes(dtype, shape, name=name)


@dataclasses.dataclass(frozen=True)
class Assembled:
    """A complete, checked version: its manifest, its bytes, and their CRC32 (if computed)."""

    manifest: ParamsManifest
    sizes: list[int]
    data: bytearray
    crc32: Optional[int] = None


class Assembler:
    """Reassembles one version from its chunks, checking every offset on the way.

    With ``checksum`` the CRC32 of the data is computed as chunks arrive (for persistence).
    """

    def __init__(self, *, max_total_bytes: Optional[int] = None, checksum: bool = False) -> None:
        self._max_total_bytes = max_total_bytes
        self._checksum = checksum
        self._manifest: Optional[ParamsManifest] = None
        self._sizes: list[int] = []
        self._buffer = bytearray()
        self._view = memoryview(self._buffer)
        self._received = 0
        self._crc = 0

    @property
    def manifest(self) -> Optional[ParamsManifest]:
        """The manifest of the first chunk (``None`` before it arrived)."""
        return self._manifest

    @property
    def complete(self) -> bool:
        return self._manifest is not None and self._received == self._manifest.total_bytes

    def add(self, chunk: ParamsChunk) -> None:
        """Takes the next chunk; raises ``ValueError`` on a missing/repeated manifest or a bad range."""
        if self._manifest is None:
            if not chunk.HasField("manifest"):
                raise ValueError("the first chunk of a version must carry its manifest")
            self._sizes = check_manifest(chunk.manifest, max_total_bytes=self._max_total_bytes)
            self._manifest = ParamsManifest()
            self._manifest.CopyFrom(chunk.manifest)  # not a view into the chunk: kept after it
            self._buffer = bytearray(self._manifest.total_bytes)  # validated: within the limit
            self._view = memoryview(self._buffer)
        elif chunk.HasField("manifest"):
            raise ValueError(f"parameters {self._manifest.name!r}: manifest repeated after the first chunk")
        data = chunk.data
        total = self._manifest.total_bytes
        if chunk.offset != self._received:
            kind = "overlaps" if chunk.offset < self._received else "leaves a gap after"
            raise ValueError(
                f"parameters {self._manifest.name!r}: chunk at offset {chunk.offset} {kind} "
                f"the {self._received} bytes received"
            )
        end = self._received + len(data)
        if end > total:
            raise ValueError(
                f"parameters {self._manifest.name!r}: chunk ends at byte {end}, beyond total_bytes {total}"
            )
        self._view[self._received:end] = data
        if self._checksum:
            self._crc = zlib.crc32(data, self._crc)
        self._received = end

    def finish(self) -> Assembled:
        """The complete version; ``ValueError`` if the stream ended early (or was empty)."""
        if self._manifest is None:
            raise ValueError("empty stream: no manifest received")
        if not self.complete:
            raise ValueError(
                f"parameters {self._manifest.name!r}: stream ended after {self._received} of "
                f"{self._manifest.total_bytes} bytes"
            )
        self._view.release()
        return Assembled(self._manifest, self._sizes, self._buffer, self._crc if self._checksum else None)


def _ranges(parts: Sequence[bytes | bytearray | memoryview], chunk_bytes: int) -> Iterator[tuple[int, list[memoryview]]]:
    """``(offset, pieces)`` of each chunk: ``chunk_bytes`` of ``parts`` concatenated, not joined
    in memory. At least one (possibly empty) range, even for zero bytes."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    offset, index, start = 0, 0, 0
    while True:
        pieces: list[memoryview] = []
        want = chunk_bytes
        while want and index < len(views):
            view = views[index]
            take = min(want, len(view) - start)
            pieces.append(view[start:start + take])
            want -= take
            start += take
            if start == len(view):
                index, start = index + 1, 0
        yield offset, pieces
        offset += chunk_bytes - want
        if index == len(views):
            return


def iter_chunks(manifest: ParamsManifest, parts: Sequence[bytes | bytearray | memoryview], chunk_bytes: int) -> Iterator[ParamsChunk]:
    """The ``ParamsChunk`` messages of one version whose bytes are ``parts`` concatenated.

    The first chunk carries the manifest and the first ``chunk_bytes`` of data.
    """
    for offset, pieces in _ranges(parts, chunk_bytes):
        chunk = ParamsChunk(offset=offset, data=b"".join(pieces))
        if offset == 0:
            chunk.manifest.CopyFrom(manifest)
        yield chunk


_DATA_TAG = b"\x1a"  # ParamsChunk.data: field 3, wire type 2 (length-delimited)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def serialized_chunks(
    manifest: ParamsManifest, parts: Sequence[bytes | bytearray | memoryview], chunk_bytes: int
) -> Iterator[bytes]:
    """Exactly ``c.SerializeToString() for c in iter_chunks(...)``, with one copy of the data
    instead of three: protobuf writes the manifest and offset, the data field is appended
    (fields in number order, as protobuf itself serializes them; checked by the tests)."""
    for offset, pieces in _ranges(parts, chunk_bytes):
        head = ParamsChunk(offset=offset)
        if offset == 0:
            head.manifest.CopyFrom(manifest)
        size = sum(len(p) for p in pieces)
        if size == 0:
            yield head.SerializeToString()
        else:
            yield b"".join([head.SerializeToString(), _DATA_TAG, _varint(size), *pieces])


def decode_tensors(
    assembled: Assembled, *, bfloat16: Literal["torch", "raw"] = "torch"
) -> dict[str, object]:
    """Tensors of a version as zero-copy numpy views over its buffer, in manifest order.

    bfloat16 has no numpy dtype: ``"torch"`` gives a torch tensor (one copy), ``"raw"`` a
    ``uint16`` view of its bits (the server, which never computes with them, keeps those).
    """
    view = memoryview(assembled.data)
    out: dict[str, object] = {}
    offset = 0
    for spec, size in zip(assembled.manifest.tensors, assembled.sizes):
        part = view[offset:offset + size]
        offset += size
        if spec.dtype != tensor_pb2.DTYPE_BFLOAT16:
            out[spec.name] = decode_parts(spec.dtype, spec.shape, part, name=spec.name)
        elif bfloat16 == "torch":
            out[spec.name] = torch_from_parts(spec.dtype, spec.shape, part, name=spec.name)
        else:
            out[spec.name] = np.frombuffer(part, dtype="<u2").reshape(tuple(spec.shape))
    return out
