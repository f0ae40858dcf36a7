"""The replay's big messages on the wire: ``InsertRequest`` (actor -> replay) and ``SampleResponse`` (replay -> learner).

Where it sits: ``replay_service.client`` writes requests and reads batches, ``replay_service.servicer``
reads requests and writes batches, all through this module. Both messages are megabytes of tensor
bytes around a few small fields; they are written with :mod:`herd.wire.fastpb` (the arrays copied
once, into the message, data aligned) and read as zero-copy views of the received bytes, except
small messages, which the generated classes parse faster (see ``SMALL_MESSAGE_BYTES``). Either
way the result is the same: views whose tensors ``RawTensor.decode`` validates with the codec.
The servicer reads requests with :func:`decode_insert`, which also remembers the layout of each
validated request shape, so the next request of that shape is checked byte-for-byte against it
and viewed in place (the replay table keeps those views: ``bytes`` never change).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from google.protobuf.message import DecodeError

from herd.v1 import replay_pb2, tensor_pb2
from herd.wire.codec import ArrayLike, WireError
from herd.wire.fastpb import (
    LENGTH,
    VARINT,
    RawTensor,
    packed_doubles_field,
    packed_varints_field,
    read_varint,
    repeated_doubles,
    repeated_varints,
    scan_fields,
    signed,
    string_field,
    tensor_map_into,
    text,
    uint_field,
    with_tensor_map,
)

SMALL_MESSAGE_BYTES = 128 * 1024
"""Received messages up to this size are parsed by the generated classes: their C parser beats the
Python one here while the copies it makes are small (measured on 64 KiB items; above ~200 KiB
the copies dominate, e.g. 256 us vs 28 us for 512 KiB)."""


def encode_insert_request(
    *,
    table: str,
    items: Mapping[str, ArrayLike],
    num_items: int,
    sequence_id: int = 0,
    priorities: Optional[Sequence[float] | np.ndarray] = None,
    timeout_ms: int = 0,
    actor_id: str = "",
    ack_every: int = 0,
) -> bytes:
    """A serialized ``herd.v1.InsertRequest``: the arrays are copied once, into the result."""
    head = string_field(1, table) + uint_field(2, sequence_id)
    tail = (uint_field(4, num_items) + packed_doubles_field(5, priorities) + uint_field(6, timeout_ms)
            + string_field(7, actor_id) + uint_field(8, ack_every))
    return b"".join([*with_tensor_map(head, 3, items), tail])


def encode_sample_response(
    *, keys: Sequence[int] | np.ndarray, probabilities: Sequence[float] | np.ndarray,
    data: Mapping[str, ArrayLike], table_size: int,
) -> bytes:
    """A serialized ``herd.v1.SampleResponse``: the batch arrays are copied once, into the result."""
    head = packed_varints_field(1, keys) + packed_doubles_field(2, probabilities)
    return b"".join([*with_tensor_map(head, 3, data), uint_field(4, table_size)])



@dataclasses.dataclass
class InsertRequestView:
    """A parsed ``herd.v1.InsertRequest``; ``items`` still hold raw, unvalidated tensors."""

    table: str = ""
    sequence_id: int = 0
    items: dict[str, RawTensor] = dataclasses.field(default_factory=dict)
    num_items: int = 0
    priorities: list[float] = dataclasses.field(default_factory=list)
    timeout_ms: int = 0
    actor_id: str = ""
    ack_every: int = 0
    arrays: Optional[dict[str, np.ndarray]] = None
    """The validated tensors as read-only arrays (filled by :func:`decode_insert`)."""


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where the tensors of one known message shape are: everything but their data is in ``segments``."""

    table: str
    segments: tuple[tuple[int, bytes], ...]  # (offset, the exact bytes there), from field 3 to its end
    tensors: tuple[tuple[str, int, np.dtype, tuple[int, ...]], ...]  # name, data offset, dtype, shape
    tail: int  # where the fields after the tensor map start


_NESTED_PACK = "packed: requests may be packed only alone in a message of their own, never nested"

_LAYOUTS: dict[tuple[int, bytes, int], _Layout] = {}
_MAX_LAYOUTS = 256


def decode_insert(buf: bytes) -> InsertRequestView:
    """Parses an ``InsertRequest`` and validates its tensors; ``arrays`` are read-only views of ``buf``.

    Actors send the same structure over and over, so the layout of a validated message is
    remembered: a later message of the same length, table and sequence-id width whose bytes
    outside the tensor data are identical (compared here) parses to the same dtypes, shapes and
    offsets, so its tensors are viewed in place without parsing or validating them again
    (except bool data, whose bytes are checked each time). Anything else takes
    :func:`decode_insert_request` and the codec's checks (``WireError`` naming the tensor).
    """
    head = _head(buf)
    layout = _LAYOUTS.get((len(buf), buf[2:head[0]], head[1])) if head is not None else None
    if layout is not None and all(buf[o:o + len(b)] == b for o, b in layout.segments):
        request = InsertRequestView(layout.table, head[2])  # type: ignore[index]
        if _tail_into(buf, layout.tail, request):
            arrays = {}
            for name, offset, dtype, shape in layout.tensors:
                array = np.frombuffer(buf, dtype, _count(shape), offset).reshape(shape)
                if dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
                    raise WireError(f"tensor {name!r}: bool bytes must be 0 or 1")
                arrays[name] = array
            request.arrays = arrays
            return request
    request = decode_insert_request(buf, small=0)  # views, so the tensors' offsets are known
    request.arrays = {name: raw.decode(name) for name, raw in request.items.items()}
    if head is not None:
        _remember(buf, head, request)
    return request


def _head(buf: bytes) -> Optional[tuple[int, int, int]]:
    """``(end of the table name, start of field 3, sequence id)`` of a message in canonical order, else None."""
    if len(buf) < 3 or buf[0] != 0x0A or buf[1] >= 0x80:
        return None
    p = 2 + buf[1]
    seq = 0
    if p < len(buf) and buf[p] == 0x10:
        try:
            seq, p = read_varint(buf, p + 1, len(buf), "sequence_id")
        except WireError:
            return None
    if p >= len(buf) or buf[p] != 0x1A:
        return None
    return 2 + buf[1], p, seq


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def _scalar_field_into(buf: bytes, field: tuple, request: InsertRequestView) -> bool:
    """Stores one of the fields after the tensor map (num_items ... ack_every); False if not one."""
    number, wire_type, a, b = field
    if number == 4 and wire_type == VARINT:
        request.num_items = a & 0xFFFFFFFF
    elif number == 5:
        repeated_doubles(buf, field, request.priorities, "priorities")
    elif number == 6 and wire_type == VARINT:
        request.timeout_ms = signed(a)
    elif number == 7 and wire_type == LENGTH:
        request.actor_id = text(buf, a, b, "actor_id")
    elif number == 8 and wire_type == VARINT:
        request.ack_every = a & 0xFFFFFFFF
    elif number == 9:
        raise WireError(_NESTED_PACK)
    else:
        return False
    return True


def _tail_into(buf: bytes, pos: int, request: InsertRequestView) -> bool:
    """Reads the fields after the tensor map; False if one of them would change what came before."""
    for field in scan_fields(buf, pos, len(buf), "InsertRequest"):
        if not _scalar_field_into(buf, field, request) and field[0] in (1, 2, 3):
            return False  # a repeated table, sequence id or tensor map: the generic path merges
    return True


def _remember(buf: bytes, head: tuple[int, int, int], request: InsertRequestView) -> None:
    """Stores the layout of ``buf`` (validated into ``request``) if it is canonical: one tensor map, then the tail."""
    start = head[1]
    try:
        length, p = read_varint(buf, start + 1, len(buf), "items")
    except WireError:
        return
    end = p + length
    check = InsertRequestView()
    if end > len(buf) or not _tail_into(buf, end, check) or request.arrays is None:
        return
    base = np.frombuffer(buf, np.uint8).ctypes.data
    tensors, regions = [], []
    for name, raw in request.items.items():
        array = request.arrays[name]
        if array.size == 0:
            tensors.append((name, -1, array.dtype, array.shape))
            continue
        if not isinstance(raw.data, memoryview) or array.base is None or not array.flags.aligned:
            return
        offset = np.frombuffer(raw.data, np.uint8).ctypes.data - base
        if not start < offset <= end - array.nbytes:
            return
        tensors.append((name, offset, array.dtype, array.shape))
        regions.append((offset, offset + array.nbytes))
    if any(offset < 0 for _, offset, _, _ in tensors):
        return  # empty tensors: rare, not worth a special case
    regions.sort()
    segments, cursor = [], start
    for a, b in regions:
        if a < cursor:
            return
        segments.append((cursor, buf[cursor:a]))
        cursor = b
    segments.append((cursor, buf[cursor:end]))
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        _LAYOUTS.clear()
    _LAYOUTS[(len(buf), buf[2:head[0]], start)] = _Layout(request.table, tuple(segments), tuple(tensors), end)


def decode_insert_request(buf: bytes, *, small: Optional[int] = None) -> InsertRequestView:
    """Parses a serialized ``InsertRequest``; tensor bytes are not copied if it is over ``small``
    (default ``SMALL_MESSAGE_BYTES``) bytes."""
    if len(buf) <= (SMALL_MESSAGE_BYTES if small is None else small):
        message = _parse(replay_pb2.InsertRequest, buf)
        if message.packed:
            raise WireError(_NESTED_PACK)
        return InsertRequestView(message.table, message.sequence_id, _raw_tensors(message.items),
                                 message.num_items, list(message.priorities), message.timeout_ms, message.actor_id,
                                 message.ack_every)
    request = InsertRequestView()
    mv = memoryview(buf)
    for field in scan_fields(buf, 0, len(buf), "InsertRequest"):
        number, wire_type, a, b = field
        if number == 1 and wire_type == LENGTH:
            request.table = text(buf, a, b, "table")
        elif number == 2 and wire_type == VARINT:
            request.sequence_id = a
        elif number == 3 and wire_type == LENGTH:
            tensor_map_into(buf, mv, a, b, request.items, "items")  # a repeated message field merges
        else:
            _scalar_field_into(buf, field, request)
    return request


def _parse(cls: Any, buf: bytes) -> Any:
    try:
        return cls.FromString(buf)
    except DecodeError as e:
        raise WireError(f"{cls.DESCRIPTOR.name}: malformed message ({e})") from None


def _raw_tensors(tensors: tensor_pb2.TensorMap) -> dict[str, RawTensor]:
    return {name: RawTensor(t.dtype, list(t.shape), t.data) for name, t in tensors.tensors.items()}


@dataclasses.dataclass
class SampleResponseView:
    """A parsed ``herd.v1.SampleResponse``; ``data`` still holds raw, unvalidated tensors."""

    keys: list[int] = dataclasses.field(default_factory=list)
    probabilities: list[float] = dataclasses.field(default_factory=list)
    data: dict[str, RawTensor] = dataclasses.field(default_factory=dict)
    table_size: int = 0


def decode_sample_response(buf: bytes, *, small: Optional[int] = None) -> SampleResponseView:
    """Parses a serialized ``SampleResponse``; tensor bytes are not copied if it is over ``small``
    (default ``SMALL_MESSAGE_BYTES``) bytes."""
    if len(buf) <= (SMALL_MESSAGE_BYTES if small is None else small):
        message = _parse(replay_pb2.SampleResponse, buf)
        return SampleResponseView(list(message.keys), list(message.probabilities), _raw_tensors(message.data),
                                  message.table_size)
    response = SampleResponseView()
    mv = memoryview(buf)
    for field in scan_fields(buf, 0, len(buf), "SampleResponse"):
        number, wire_type, a, b = field
        if number == 1:
            repeated_varints(buf, field, response.keys, "keys")
        elif number == 2:
            repeated_doubles(buf, field, response.probabilities, "probabilities")
        elif number == 3 and wire_type == LENGTH:
            tensor_map_into(buf, mv, a, b, response.data, "data")
        elif number == 4 and wire_type == VARINT:
            response.table_size = a
    return response
