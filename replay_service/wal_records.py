"""The replay write-ahead log's on-disk records: framing, checksums, encode and decode (no pickle).

Where it sits: ``replay_service.wal`` appends these records for every mutation of a durable
table (``durability: wal``) and reads them back on restart; ``Table.apply`` replays them.

A record on disk, all integers little-endian::

    u32 meta_len | u32 payload_len | u32 crc | meta (meta_len bytes) | payload (payload_len bytes)
    meta = u8 kind | u64 lsn | kind-specific fixed fields

    crc = the checksum over payload, then the two lengths, then meta (running in that order)

The checksum is named by the segment's magic: CRC-32C (Castagnoli, ``MAGIC_CRC32C``; hardware
instructions through ``google-crc32c``, ~25 GB/s here) for segments this build writes when that
package's C extension loads, else CRC-32 (``zlib``, ~5 GB/s; ``MAGIC_CRC32``, all older segments).
Both are read.

The payload comes first in the CRC so the expensive part (an item's tensor bytes) is summed
before the table lock is taken; the key and log position are only known under the lock.

Kinds (``lsn`` is the log sequence number: 1, 2, 3, ... over the table's life):

- ``INSERT``  meta ``u64 key, f64 priority``; payload the item's fields' raw bytes, C order, in
  signature order (the dtypes and shapes come from the signature, logged once). Read, no
  longer written (format version 1).
- ``INSERTS`` (version 2) ``n`` items with the consecutive keys ``first_key ..``, and the
  ``m`` keys evicted to make room for them: meta ``u64 first_key, u32 n, u32 m``; payload
  each field's ``[T, n, ...]`` raw bytes (C order, signature order: the request's tensors
  as received), then ``n`` f64 priorities, then ``m`` u64 evicted keys in eviction order.
  Replay inserts the items in order and, like the insert did, evicts the next logged key
  whenever an item finds the table full (a key may be one of this record's earlier items).
- ``DELETE``  meta ``u64 key``: the remover evicted ``key`` to make room for the next insert.
- ``SAMPLE``  meta ``u32 n``; payload ``n`` u64 keys, as picked (repeats possible): each key's
  ``times_sampled`` grows by one and it is deleted on reaching ``max_times_sampled``.
- ``PRIORITY`` meta ``u32 n``; payload ``n`` u64 keys then ``n`` f64 priorities.
- ``SIGNATURE`` payload: the table signature as JSON (``checkpoint.signature_to_json``).
- ``HEADER``  (first record of a segment, lsn 0) payload: JSON ``{format, format_version, table,
  first_lsn, signature}``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import struct
import zlib
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from replay_service.signature import Signature

FORMAT = "herd.replay.wal"
FORMAT_VERSION = 2
"""Written by this build; version 1 logs (one INSERT record per item) are still read."""
READ_VERSIONS = (1, 2)
MAGIC_CRC32 = b"HERDWAL\n"
"""The first 8 bytes of a segment whose records carry zlib's CRC-32."""
MAGIC_CRC32C = b"HERDWALC"
"""The first 8 bytes of a segment whose records carry CRC-32C."""
MAX_META_BYTES = 64
MAX_PAYLOAD_BYTES = (1 << 32) - 1

Checksum = Callable[[Any, int], int]
"""``(buffer, running value) -> value``: a CRC continued over ``buffer``."""

try:
    from google_crc32c import cext as _crc32c
except ImportError:  # no C extension for this platform: the pure-Python one would be far slower than zlib
    _crc32c = None


def crc32c(data: Any, value: int = 0) -> int:
    """CRC-32C of ``data`` (bytes or a C-contiguous array) continued from ``value``."""
    return _crc32c.extend(value, data if isinstance(data, (bytes, np.ndarray)) else bytes(data))


MAGICS: dict[bytes, Checksum] = {MAGIC_CRC32: zlib.crc32, MAGIC_CRC32C: crc32c}
"""Each segment magic and the checksum its records carry."""
MAGIC = MAGIC_CRC32C if _crc32c is not None else MAGIC_CRC32
"""The magic of the segments this build writes."""
checksum: Checksum = MAGICS[MAGIC]
"""The checksum of the records this build writes."""

JOIN_BELOW_BYTES = 4 * 1024
"""Records with a payload up to this size are queued as one joined buffer rather than as their parts
(each part costs the flusher a buffer view and the kernel an iovec; copying a few KiB costs less)."""
_FRAME = struct.Struct("<III")  # meta_len, payload_len, crc
_LENGTHS = struct.Struct("<II")
_BASE = struct.Struct("<BQ")  # kind, lsn
_KEY_PRIORITY = struct.Struct("<Qd")
_KEY = struct.Struct("<Q")
_COUNT = struct.Struct("<I")
_BATCH = struct.Struct("<QII")  # first key, items, evicted keys
FRAME_BYTES = _FRAME.size


class Kind(enum.IntEnum):
    HEADER = 0
    INSERT = 1
    DELETE = 2
    SAMPLE = 3
    PRIORITY = 4
    SIGNATURE = 5
    INSERTS = 6


_EXTRA = {Kind.HEADER: b"", Kind.INSERT: _KEY_PRIORITY, Kind.DELETE: _KEY, Kind.SAMPLE: _COUNT,
          Kind.PRIORITY: _COUNT, Kind.SIGNATURE: b"", Kind.INSERTS: _BATCH}


class RecordError(ValueError):
    """A record that fails its CRC or does not parse (a corrupt log)."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One decoded record; which fields are set depends on ``kind``."""

    kind: Kind
    lsn: int
    key: int = 0  # INSERT, DELETE; INSERTS: the first key
    priority: float = 0.0  # INSERT
    keys: Sequence[int] = ()  # SAMPLE, PRIORITY; INSERTS: the evicted keys
    priorities: Sequence[float] = ()  # PRIORITY, INSERTS
    payload: Any = b""  # INSERT(S): raw field bytes (item_arrays / batch_items); HEADER/SIGNATURE: JSON
    count: int = 0  # INSERTS: items

    def json(self) -> Any:
        """The JSON payload of a HEADER or SIGNATURE record."""
        try:
            return json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordError(f"{self.kind.name} record {self.lsn}: payload is not JSON ({e})") from None


@dataclasses.dataclass(frozen=True)
class EncodedItem:
    """An item's payload ready to be logged: its fields as byte buffers plus their CRC32."""

    parts: tuple[Any, ...]  # buffers (uint8 views of the read-only item arrays: no copy)
    nbytes: int
    crc: int


def encode_item(data: Mapping[str, np.ndarray], signature: Signature) -> EncodedItem:
    """The INSERT payload of one item (``[T, ...]`` arrays matching ``signature``), summed outside any lock."""
    parts = []
    crc = 0
    nbytes = 0
    for name in signature:
        raw = np.ascontiguousarray(data[name]).reshape(-1).view(np.uint8)
        parts.append(raw)
        crc = checksum(raw, crc)
        nbytes += raw.nbytes
    return EncodedItem(tuple(parts), nbytes, crc)


def frame(kind: Kind, lsn: int, extra: tuple[Any, ...] = (), payload: Sequence[Any] = (),
          payload_nbytes: Optional[int] = None, payload_crc: Optional[int] = None) -> list[Any]:
    """A record as a list of buffers to write in order (``payload`` buffers are not copied)."""
    spec = _EXTRA[kind]
    meta = _BASE.pack(int(kind), lsn) + (spec.pack(*extra) if extra else b"")
    if payload_nbytes is None:
        payload_nbytes = sum(memoryview(p).nbytes for p in payload)
    if payload_nbytes > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload: {payload_nbytes} bytes is over the record limit of {MAX_PAYLOAD_BYTES}")
    if payload_crc is None:
        payload_crc = 0
        for p in payload:
            payload_crc = checksum(p, payload_crc)
    lengths = _LENGTHS.pack(len(meta), payload_nbytes)
    crc = checksum(meta, checksum(lengths, payload_crc))
    parts = [_FRAME.pack(len(meta), payload_nbytes, crc), meta, *payload]
    if payload_nbytes <= JOIN_BELOW_BYTES:  # one buffer: cheaper to copy than to hand the writer many
        return [b"".join(parts)]
    return parts


@dataclasses.dataclass(frozen=True)
class EncodedBatch:
    """The part of an INSERTS payload known before the table lock: fields and priorities, and their CRC32."""

    parts: tuple[Any, ...]  # the stacked field arrays (immutable, C-contiguous: written as they are), priorities
    nbytes: int
    crc: int
    count: int


def encode_batch(stacked: Mapping[str, np.ndarray], priorities: Sequence[float], signature: Signature) -> EncodedBatch:
    """The INSERTS payload of ``n`` items given as stacked ``[T, n, ...]`` fields, summed outside any lock."""
    parts: list[Any] = []
    crc = nbytes = 0
    for name in signature:
        raw = stacked[name]
        if raw.nbytes:
            crc = checksum(raw, crc)  # C-contiguous arrays are read in place
            parts.append(raw)
            nbytes += raw.nbytes
    prios = np.asarray(priorities, dtype="<f8").tobytes()
    parts.append(prios)
    return EncodedBatch(tuple(parts), nbytes + len(prios), checksum(prios, crc), len(priorities))


def inserts_record(lsn: int, first_key: int, batch: EncodedBatch, evicted: Sequence[int]) -> list[Any]:
    victims = np.asarray(evicted, dtype="<u8").tobytes()
    return frame(Kind.INSERTS, lsn, (first_key, batch.count, len(evicted)), (*batch.parts, victims),
                 batch.nbytes + len(victims), checksum(victims, batch.crc))


def insert_record(lsn: int, key: int, priority: float, item: EncodedItem) -> list[Any]:
    return frame(Kind.INSERT, lsn, (key, priority), item.parts, item.nbytes, item.crc)


def delete_record(lsn: int, key: int) -> list[Any]:
    return frame(Kind.DELETE, lsn, (key,))


def sample_record(lsn: int, keys: Sequence[int]) -> list[Any]:
    return frame(Kind.SAMPLE, lsn, (len(keys),), [np.asarray(keys, dtype="<u8").tobytes()])


def priority_record(lsn: int, keys: Sequence[int], priorities: Sequence[float]) -> list[Any]:
    payload = np.asarray(keys, dtype="<u8").tobytes() + np.asarray(priorities, dtype="<f8").tobytes()
    return frame(Kind.PRIORITY, lsn, (len(keys),), [payload])


def json_record(kind: Kind, lsn: int, obj: Any) -> list[Any]:
    return frame(kind, lsn, (), [json.dumps(obj).encode("utf-8")])


def to_bytes(parts: Iterable[Any]) -> bytes:
    """A framed record as one bytes object (tests, small records)."""
    return b"".join(bytes(memoryview(p)) for p in parts)


def parse_frame(head: bytes) -> tuple[int, int, int]:
    """``(meta_len, payload_len, crc)`` of a frame header; RecordError if the lengths are impossible."""
    meta_len, payload_len, crc = _FRAME.unpack(head)
    if not _BASE.size <= meta_len <= MAX_META_BYTES:
        raise RecordError(f"meta length {meta_len} is outside [{_BASE.size}, {MAX_META_BYTES}]")
    return meta_len, payload_len, crc


def decode(meta: bytes, payload: bytes, crc: int, summed: Checksum = None) -> Record:  # type: ignore[assignment]
    """Checks the checksum of one record (``meta`` and ``payload`` as read after its frame; ``summed``:
    the segment's checksum function, default ``checksum``) and decodes it."""
    summed = summed or checksum
    lengths = _LENGTHS.pack(len(meta), len(payload))
    found = summed(meta, summed(lengths, summed(payload, 0)))
    if found != crc:
        raise RecordError(f"checksum mismatch (stored {crc:#010x}, computed {found:#010x})")
    kind_value, lsn = _BASE.unpack_from(meta)
    try:
        kind = Kind(kind_value)
    except ValueError:
        raise RecordError(f"unknown record kind {kind_value}") from None
    spec = _EXTRA[kind]
    want = _BASE.size + (spec.size if spec else 0)
    if len(meta) != want:
        raise RecordError(f"{kind.name} record {lsn}: meta of {len(meta)} bytes, expected {want}")
    extra = spec.unpack_from(meta, _BASE.size) if spec else ()
    if kind is Kind.INSERT:
        return Record(kind, lsn, key=extra[0], priority=extra[1], payload=payload)
    if kind is Kind.DELETE:
        return Record(kind, lsn, key=extra[0])
    if kind is Kind.INSERTS:
        first, n, m = extra
        data = len(payload) - 8 * (n + m)
        if data < 0:
            raise RecordError(f"INSERTS record {lsn}: {len(payload)} payload bytes for {n} items and {m} evictions")
        return Record(kind, lsn, key=first, count=n, payload=memoryview(payload)[:data],
                      priorities=np.frombuffer(payload, "<f8", n, data).tolist(),
                      keys=np.frombuffer(payload, "<u8", m, data + 8 * n).tolist())
    if kind in (Kind.SAMPLE, Kind.PRIORITY):
        n = extra[0]
        width = 8 if kind is Kind.SAMPLE else 16
        if len(payload) != n * width:
            raise RecordError(f"{kind.name} record {lsn}: {len(payload)} payload bytes for {n} keys")
        keys = np.frombuffer(payload, dtype="<u8", count=n).tolist()
        if kind is Kind.SAMPLE:
            return Record(kind, lsn, keys=keys)
        return Record(kind, lsn, keys=keys, priorities=np.frombuffer(payload, "<f8", n, 8 * n).tolist())
    return Record(kind, lsn, payload=payload)


def item_arrays(record: Record, signature: Signature) -> dict[str, np.ndarray]:
    """The item of an INSERT record: read-only arrays viewing its payload (no copy)."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name, (dtype, shape) in signature.items():
        count = int(np.prod(shape, dtype=np.int64))
        if offset + count * dtype.itemsize > len(record.payload):
            break
        if count:
            out[name] = np.frombuffer(record.payload, dtype, count, offset).reshape(shape)
        else:  # a zero-size field: nothing stored
            out[name] = np.empty(shape, dtype)
            out[name].flags.writeable = False
        offset += count * dtype.itemsize
    if len(out) != len(signature) or offset != len(record.payload):
        raise RecordError(
            f"INSERT record {record.lsn}: {len(record.payload)} payload bytes do not match the signature"
        )
    return out


def batch_items(record: Record, signature: Signature) -> list[dict[str, np.ndarray]]:
    """The items of an INSERTS record: read-only arrays viewing its payload (no copy)."""
    n = record.count
    out: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    offset = 0
    payload = record.payload
    for name, (dtype, shape) in signature.items():
        stacked_shape = (shape[0], n, *shape[1:])
        count = int(np.prod(stacked_shape, dtype=np.int64))
        if offset + count * dtype.itemsize > len(payload):
            break
        if count:
            stacked = np.frombuffer(payload, dtype, count, offset).reshape(stacked_shape)
        else:
            stacked = np.empty(stacked_shape, dtype)
            stacked.flags.writeable = False
        for i in range(n):
            out[i][name] = stacked[:, i]
        offset += count * dtype.itemsize
    if any(len(item) != len(signature) for item in out) or offset != len(payload):
        raise RecordError(f"INSERTS record {record.lsn}: {len(payload)} payload bytes do not match "
                          f"{n} items of the signature")
    return out
