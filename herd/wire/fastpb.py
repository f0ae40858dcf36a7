"""Protobuf wire format written and read by hand, for messages that carry big tensors.

Where it sits: under :mod:`herd.wire.replay_codec` (the replay's ``InsertRequest`` and
``SampleResponse``). Through the generated classes every tensor is copied four times on the way
out (``tobytes``, field assignment, ``SerializeToString``, gRPC's slice) and three times on the
way in (gRPC's bytes, parsing, the ``.data`` getter); at 512 KiB that is ~250 us to read and
~550 us to write a message, against ~25 us here. Here a message is joined straight from the
numpy arrays (one copy) and read as zero-copy ``memoryview`` slices of the received bytes.

The bytes are ordinary protobuf (``protos/herd/v1``): the generated classes parse what this
module writes and this module parses what they write (packed or unpacked repeated fields, any
field order, unknown fields skipped, a repeated map key: the last wins). Tensors are validated by
``herd.wire.codec.decode_parts`` as before; malformed messages raise ``WireError`` naming what is
wrong. ``tests/wire/test_wire_fastpb.py`` checks both directions against the generated classes,
and fails when the messages gain a field this module does not know.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from herd.wire.codec import ArrayLike, WireError, decode_parts, encode_parts

Buffer = Union[bytes, memoryview]
Piece = Union[bytes, memoryview]

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5  # wire types


# ---------------------------------------------------------------------------- writing
# Layout: every tensor's data starts at a multiple of ALIGN bytes from the message start, so the
# receiver's views are aligned (gRPC hands over ``bytes`` whose buffer is 16-byte aligned) and
# need no copy. Two legal protobuf encodings make that possible in one pass: the lengths of the
# TensorMap, its entries and their Tensor values are written as 5-byte varints (non-minimal
# varints are valid protobuf; parsers read them), so every offset is known before the sizes are;
# and the dtype varint is widened by 0 to ALIGN - 1 bytes to pad the data's start.
ALIGN = 8
"""Alignment of tensor data within messages written here (the largest element size)."""
_BYTE = [bytes((i,)) for i in range(128)]  # one-byte varints, the common case
_WIDE = 5  # bytes of every enclosing length (a varint32 takes at most 5)


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _BYTE[value]
    if value < 0:
        value += 1 << 64  # int64 two's complement: 10 bytes
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _wide_varint(value: int, width: int) -> bytes:
    """``value`` (>= 0) as a varint of exactly ``width`` bytes (padded with continuation bytes)."""
    out = bytearray()
    for _ in range(width - 1):
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    if value >= 0x80:
        raise WireError(f"a length of {len(out)} + bytes does not fit in a {width}-byte varint")
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def length_delimited(field: int, payload_length: int) -> bytes:
    return _key(field, LENGTH) + _varint(payload_length)


_ENUMS: dict[np.dtype, int] = {}


def _dtype_enum(dtype: np.dtype) -> int:
    """The wire dtype of a numpy dtype (the codec's mapping and errors, via a 0-element array)."""
    enum = _ENUMS.get(dtype)
    if enum is None:
        enum = _ENUMS[dtype] = int(encode_parts(np.empty((0,), dtype))[0])
    return enum


_HEADERS: dict[tuple[str, np.dtype, tuple[int, ...], int], bytes] = {}  # entry headers of arrays seen before
_MAX_HEADERS = 4096


def _entry_pieces(name: str, value: ArrayLike, offset: int) -> tuple[bytes, Piece]:
    """``(header, data)`` of one ``TensorMap.tensors`` entry starting at ``offset``; ``data`` is not copied."""
    if type(value) is np.ndarray and value.dtype.isnative:
        arr = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        data: Piece = arr if arr.size else b""  # bytes.join reads C-contiguous arrays as they are
        key = (name, arr.dtype, arr.shape, offset)
        header = _HEADERS.get(key)  # an actor sends the same structure every time: built once
        if header is None:
            header = _entry_header(name, _ENUMS.get(arr.dtype) or _dtype_enum(arr.dtype), arr.shape, arr.nbytes, offset)
            if len(_HEADERS) >= _MAX_HEADERS:
                _HEADERS.clear()
            _HEADERS[key] = header
        return header, data
    # torch tensors, numpy scalars, non-native byte order, bfloat16: the codec's one copy
    dtype, shape, data = encode_parts(value, name=name)
    return _entry_header(name, dtype, shape, len(data), offset), data


def _entry_header(name: str, dtype: int, shape: Sequence[int], nbytes: int, offset: int) -> bytes:
    """The bytes of a ``TensorMap.tensors`` entry starting at ``offset`` up to its tensor's data."""
    key = name.encode("utf-8")
    dims = b"".join([_BYTE[d] if d < 0x80 else _varint(d) for d in shape])
    # entry: 0A <len> 0A <len> key 12 <len> | tensor: 08 <dtype> [12 <len> dims] [1A <len> data]
    head_length = 1 + _WIDE + 1 + len(_varint(len(key))) + len(key) + 1 + _WIDE
    rest = (b"\x12" + _varint(len(dims)) + dims if dims else b"") + (b"\x1a" + _varint(nbytes) if nbytes else b"")
    width = len(_varint(dtype))
    if nbytes:  # pad so that the data starts aligned
        width += -(offset + head_length + 1 + width + len(rest)) % ALIGN
    tensor = b"\x08" + _wide_varint(dtype, width) + rest
    tensor_length = len(tensor) + nbytes
    return (b"\x0a" + _wide_varint(head_length - 1 - _WIDE + tensor_length, _WIDE)
            + b"\x0a" + _varint(len(key)) + key + b"\x12" + _wide_varint(tensor_length, _WIDE) + tensor)


def tensor_map_pieces(mapping: Mapping[str, ArrayLike], offset: int = 0) -> tuple[list[Piece], int]:
    """The serialized ``TensorMap`` as pieces to join and its length; data aligned when it starts at ``offset``."""
    pieces: list[Piece] = []
    start = offset
    for name, value in mapping.items():
        if not name or type(name) is not str:
            raise WireError(f"tensor names must be non-empty strings, got {name!r}")
        header, data = _entry_pieces(name, value, offset)
        pieces.append(header)
        pieces.append(data)
        offset += len(header) + (data.nbytes if type(data) is np.ndarray else len(data))
    return pieces, offset - start


def with_tensor_map(head: bytes, field: int, mapping: Mapping[str, ArrayLike]) -> list[Piece]:
    """``head`` then ``mapping`` as message field ``field``, its data aligned from the message start."""
    if not mapping:
        return [head]
    tag = _key(field, LENGTH)
    pieces, length = tensor_map_pieces(mapping, len(head) + len(tag) + _WIDE)
    return [head + tag + _wide_varint(length, _WIDE), *pieces]


def string_field(field: int, value: str) -> bytes:
    raw = value.encode("utf-8")
    return length_delimited(field, len(raw)) + raw if raw else b""


def uint_field(field: int, value: int) -> bytes:
    return _key(field, VARINT) + _varint(int(value)) if value else b""


def packed_doubles_field(field: int, values: Optional[Sequence[float] | np.ndarray]) -> bytes:
    if values is None or len(values) == 0:
        return b""
    raw = np.asarray(values, dtype="<f8").tobytes()
    return length_delimited(field, len(raw)) + raw


def packed_varints_field(field: int, values: Sequence[int] | np.ndarray) -> bytes:
    if len(values) == 0:
        return b""
    raw = b"".join(_varint(int(v)) for v in values)
    return length_delimited(field, len(raw)) + raw


# ---------------------------------------------------------------------------- reading
# Parsers take the received ``bytes`` and absolute offsets; only tensor data becomes a
# ``memoryview`` slice. Messages in the canonical layout (fields in order, as protobuf and the
# writers above emit them) take a fast path; anything else (unknown fields, other orders,
# unpacked repeated fields, repeated message fields) goes through the generic scanner.


def _read_varint(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            break
    raise WireError(f"{what}: malformed or truncated varint")


read_varint = _read_varint
"""``(value, position after it)`` of the varint at ``buf[pos]`` (``WireError`` if malformed)."""


def scan_fields(buf: bytes, pos: int, end: int, what: str) -> list[tuple[int, int, int, int]]:
    """The fields in ``buf[pos:end]``: ``(number, wire type, value, 0)`` for varints, else ``(number, wire type, start, stop)``."""
    fields = []
    while pos < end:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _read_varint(buf, pos, end, what)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError(f"{what}: field number 0")
        if wire_type == VARINT:
            value = buf[pos] if pos < end else 0x80
            if value < 0x80:
                pos += 1
            else:
                value, pos = _read_varint(buf, pos, end, what)
            fields.append((number, wire_type, value, 0))
            continue
        if wire_type == LENGTH:
            size = buf[pos] if pos < end else 0x80
            if size < 0x80:
                pos += 1
            else:
                size, pos = _read_varint(buf, pos, end, what)
        elif wire_type == FIXED64:
            size = 8
        elif wire_type == FIXED32:
            size = 4
        else:
            raise WireError(f"{what}: unsupported wire type {wire_type} (field {number})")
        if pos + size > end:
            raise WireError(f"{what}: field {number} runs past the end of its message")
        fields.append((number, wire_type, pos, pos + size))
        pos += size
    return fields


def signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def text(buf: bytes, start: int, stop: int, what: str) -> str:
    try:
        return buf[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"{what}: not valid UTF-8") from None


def _varints(buf: bytes, pos: int, end: int, out: list[int], what: str) -> None:
    """Appends the packed varints in ``buf[pos:end]`` to ``out``."""
    while pos < end:
        byte = buf[pos]
        if byte < 0x80:
            out.append(byte)
            pos += 1
        else:
            value, pos = _read_varint(buf, pos, end, what)
            out.append(value)


def repeated_varints(buf: bytes, field: tuple[int, int, int, int], out: list[int], what: str) -> None:
    _, wire_type, a, b = field
    if wire_type == VARINT:
        out.append(a)
    elif wire_type == LENGTH:
        _varints(buf, a, b, out, what)
    else:
        raise WireError(f"{what}: wrong wire type {wire_type}")


def repeated_doubles(buf: bytes, field: tuple[int, int, int, int], out: list[float], what: str) -> None:
    _, wire_type, a, b = field
    if wire_type not in (FIXED64, LENGTH) or (b - a) % 8:
        raise WireError(f"{what}: expected doubles")
    out.extend(struct.unpack_from(f"<{(b - a) // 8}d", buf, a))


@dataclasses.dataclass
class RawTensor:
    """A tensor as it came off the wire: its bytes are a slice of the received message."""

    dtype: int = 0
    shape: list[int] = dataclasses.field(default_factory=list)
    data: Buffer = b""

    def decode(self, name: str, *, aligned: bool = True) -> np.ndarray:
        """The validated read-only array (``codec.decode_parts``); copied only if ``aligned`` and misaligned."""
        array = decode_parts(self.dtype, self.shape, self.data, name=name)
        if aligned and not array.flags.aligned:
            array = array.copy()
            array.flags.writeable = False
        return array


def _tensor(buf: bytes, mv: memoryview, pos: int, end: int, what: str) -> RawTensor:
    """A ``Tensor`` message in ``buf[pos:end]``."""
    tensor = RawTensor()
    p = pos
    try:  # the canonical layout: [08 dtype] [12 len dims] [1A len data]
        if p < end and buf[p] == 0x08:
            tensor.dtype = buf[p + 1]
            p += 2
            if tensor.dtype >= 0x80:
                value, p = _read_varint(buf, p - 1, end, what)
                tensor.dtype = signed(value)
        if p < end and buf[p] == 0x12:
            size, p = _read_varint(buf, p + 1, end, what)
            _varints(buf, p, p + size, tensor.shape, what)
            p += size
        if p < end and buf[p] == 0x1A:
            size, p = _read_varint(buf, p + 1, end, what)
            tensor.data = mv[p:p + size]
            p += size
    except IndexError:
        p = -1
    if p != end:  # another layout (or a malformed one: the generic path says what is wrong)
        tensor = _tensor_generic(buf, mv, pos, end, what)
    if tensor.shape and max(tensor.shape) >= 1 << 63:
        tensor.shape = [signed(d) for d in tensor.shape]
    return tensor


def _tensor_generic(buf: bytes, mv: memoryview, pos: int, end: int, what: str) -> RawTensor:
    tensor = RawTensor()
    for field in scan_fields(buf, pos, end, what):
        number, wire_type, a, b = field
        if number == 1 and wire_type == VARINT:
            tensor.dtype = signed(a)
        elif number == 2:
            repeated_varints(buf, field, tensor.shape, f"{what} shape")
        elif number == 3 and wire_type == LENGTH:
            tensor.data = mv[a:b]
    return tensor


def _merge(into: RawTensor, tensor: RawTensor) -> RawTensor:
    """A message field seen twice is merged, as protobuf does: scalars overwritten if set, repeated appended."""
    return RawTensor(tensor.dtype or into.dtype, into.shape + tensor.shape, tensor.data if len(tensor.data) else into.data)


def tensor_map_into(buf: bytes, mv: memoryview, pos: int, end: int, out: dict[str, RawTensor], what: str) -> None:
    """Adds the entries of the ``TensorMap`` in ``buf[pos:end]`` to ``out`` (a repeated name: the last wins)."""
    for number, wire_type, a, b in scan_fields(buf, pos, end, what):
        if number != 1 or wire_type != LENGTH:
            continue
        try:  # the canonical entry: 0A len name 12 len tensor
            size = buf[a + 1]
            if buf[a] == 0x0A and size < 0x80 and buf[a + 2 + size] == 0x12:
                c = a + 2 + size
                length, d = _read_varint(buf, c + 1, b, what)
                if d + length == b and size:
                    name = text(buf, a + 2, c, f"{what}: tensor name")
                    out[name] = _tensor(buf, mv, d, b, f"{what}: tensor {name}")
                    continue
        except IndexError:
            pass
        name, tensor = None, None
        fields = scan_fields(buf, a, b, what)
        if any(f not in (1, 2) for f, _, _, _ in fields):
            continue  # like upb: an entry with unknown fields is not a map entry
        for f, wt, c, d in fields:  # map entry: 1 key, 2 value
            if f == 1 and wt == LENGTH:
                name = text(buf, c, d, f"{what}: tensor name")
            elif f == 2 and wt == LENGTH:
                value = _tensor(buf, mv, c, d, f"{what}: tensor {name or '?'}")
                tensor = value if tensor is None else _merge(tensor, value)
        if not name:
            raise WireError(f"{what}: tensor names must be non-empty")
        out[name] = tensor or RawTensor()


def read_tensor_map(buf: bytes, what: str = "items") -> dict[str, RawTensor]:
    """A serialized ``TensorMap`` as ``{name: RawTensor}`` (nothing copied, nothing validated yet)."""
    out: dict[str, RawTensor] = {}
    tensor_map_into(buf, memoryview(buf), 0, len(buf), out, what)
    return out
