"""The replay's big messages on the wire: ``InsertRequest`` (actor -> replay) and ``SampleResponse`` (replay -> learner).

Where it sits: ``replay_service.client`` writes requests and reads batches, ``replay_service.servicer``
reads requests and writes batches, all through this module. Both messages are megabytes of tensor
bytes around a few small fields; they are written with :mod:`herd.wire.fastpb` (the arrays copied
once, into the message, data aligned) and read as zero-copy views of the received bytes, except
small messages, which the generated classes parse faster (see ``SMALL_MESSAGE_BYTES``). Either
way the result is the same: views whose tensors ``RawTensor.decode`` validates with the codec.
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
) -> bytes:
    """A serialized ``herd.v1.InsertRequest``: the arrays are copied once, into the result."""
    head = string_field(1, table) + uint_field(2, sequence_id)
    tail = (uint_field(4, num_items) + packed_doubles_field(5, priorities) + uint_field(6, timeout_ms)
            + string_field(7, actor_id))
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


def decode_insert_request(buf: bytes, *, small: Optional[int] = None) -> InsertRequestView:
    """Parses a serialized ``InsertRequest``; tensor bytes are not copied if it is over ``small``
    (default ``SMALL_MESSAGE_BYTES``) bytes."""
    if len(buf) <= (SMALL_MESSAGE_BYTES if small is None else small):
        message = _parse(replay_pb2.InsertRequest, buf)
        return InsertRequestView(message.table, message.sequence_id, _raw_tensors(message.items),
                                 message.num_items, list(message.priorities), message.timeout_ms, message.actor_id)
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
        elif number == 4 and wire_type == VARINT:
            request.num_items = a & 0xFFFFFFFF
        elif number == 5:
            repeated_doubles(buf, field, request.priorities, "priorities")
        elif number == 6 and wire_type == VARINT:
            request.timeout_ms = signed(a)
        elif number == 7 and wire_type == LENGTH:
            request.actor_id = text(buf, a, b, "actor_id")
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
