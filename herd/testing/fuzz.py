"""Hypothesis strategies that build random protobuf messages from their descriptors (bad-input fuzzing).

Where it sits: ``tests/wire/test_rpc_fuzz.py`` sends what these strategies draw to every method
of every Herd service. Values lean towards what breaks servers: empty and unknown names, huge
and negative numbers, NaN/Inf, random dtypes and shapes, tensors whose bytes do or do not match
their shape, unknown fields and undecodable bytes.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from google.protobuf import descriptor as pbd
from google.protobuf import message_factory
from hypothesis import strategies as st

FD = pbd.FieldDescriptor

_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1), FD.TYPE_SINT32: (-(2**31), 2**31 - 1), FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1), FD.TYPE_SINT64: (-(2**63), 2**63 - 1), FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1), FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1), FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Small values most of the time, the edges of the type and huge ones sometimes."""
    edges = sorted({v for v in (lo, hi, 0, 1, -1, 2, 1000, 10**6, -(10**6), hi // 2, lo // 2) if lo <= v <= hi})
    return st.one_of(st.integers(max(lo, -3), min(hi, 8)), st.sampled_from(edges), st.integers(lo, hi))


def floats(width: int = 64) -> st.SearchStrategy[float]:
    special = st.sampled_from([0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 5e-324])
    return st.one_of(special, st.floats(width=width, allow_nan=True, allow_infinity=True))


def json_text(keys: Sequence[str]) -> st.SearchStrategy[str]:
    """JSON documents over ``keys`` (plus random ones), and text that is no JSON at all."""
    key = st.one_of(st.sampled_from(list(keys)), st.text(max_size=8))
    leaf = st.one_of(st.none(), st.booleans(), integers(-(2**63), 2**63 - 1), floats(), st.text(max_size=8))
    value = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(key, inner, max_size=3)), max_leaves=8)
    document = st.dictionaries(key, value, max_size=3)
    return st.one_of(document.map(lambda d: json.dumps(d, allow_nan=True)), st.text(max_size=40))


class MessageFuzzer:
    """Random messages of any descriptor; ``names`` are plausible string values (tables, parameter sets).

    ``string_fields`` / ``field_values`` map a field's full name to its own strategy (e.g. JSON for
    ``config_json``, small numbers for item counts) so requests get past the first checks more often.
    """

    def __init__(
        self,
        names: Sequence[str] = (),
        *,
        tensor_names: Sequence[str] = ("obs", "reward", "done"),
        string_fields: Optional[dict[str, st.SearchStrategy[str]]] = None,
        field_values: Optional[dict[str, st.SearchStrategy[Any]]] = None,
        max_depth: int = 4,
        max_repeated: int = 5,
    ) -> None:
        self.names = list(names)
        self.tensor_names = list(tensor_names)
        self.string_fields = dict(string_fields or {})
        self.field_values = dict(field_values or {})
        self.max_depth = max_depth
        self.max_repeated = max_repeated

    # -- strategies -----------------------------------------------------------------------

    def message(self, descriptor: pbd.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
        """A strategy of populated messages of ``descriptor``."""
        if descriptor.full_name == "herd.v1.Tensor":
            return st.one_of(self._consistent_tensor(), self._generic(descriptor, depth))
        return self._generic(descriptor, depth)

    def request_bytes(self, descriptor: pbd.Descriptor) -> st.SearchStrategy[bytes]:
        """Serialized messages, sometimes with unknown fields appended, sometimes undecodable bytes."""
        serialized = self.message(descriptor).map(lambda m: m.SerializeToString())
        unknown = st.tuples(serialized, st.integers(20, 536870911), st.binary(max_size=16)).map(
            lambda t: t[0] + _unknown_field(t[1], t[2]))
        garbage = st.one_of(st.binary(max_size=64), st.sampled_from([b"\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08"]))
        return st.one_of(serialized, serialized, serialized, serialized, serialized, serialized, unknown, garbage)

    # -- internals ------------------------------------------------------------------------

    @st.composite
    def _generic(draw: Any, self: "MessageFuzzer", descriptor: pbd.Descriptor, depth: int) -> Any:  # type: ignore[misc]
        message = message_factory.GetMessageClass(descriptor)()
        for field in descriptor.fields:
            if not draw(st.sampled_from((True, True, True, False))):  # mostly set: get past "field required"
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                self._fill_map(draw, message, field, depth)
            elif field.is_repeated:
                values = draw(st.lists(self._value(field, depth), max_size=self.max_repeated))
                container = getattr(message, field.name)
                for v in values:
                    if field.message_type is not None:
                        container.add().CopyFrom(v)
                    else:
                        container.append(v)
            elif field.message_type is not None:
                if depth < self.max_depth:
                    getattr(message, field.name).CopyFrom(draw(self.message(field.message_type, depth + 1)))
            else:
                setattr(message, field.name, draw(self._value(field, depth)))
        return message

    def _fill_map(self, draw: Any, message: Any, field: pbd.FieldDescriptor, depth: int) -> None:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        keys = st.one_of(st.sampled_from(self.tensor_names), self._value(key_field, depth)) \
            if key_field.type == FD.TYPE_STRING else self._value(key_field, depth)
        entries = draw(st.dictionaries(keys, self._value(value_field, depth), max_size=4))
        container = getattr(message, field.name)
        for k, v in entries.items():
            if value_field.message_type is not None:
                container[k].CopyFrom(v)
            else:
                container[k] = v

    def _value(self, field: pbd.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        t = field.type
        if field.full_name in self.field_values:
            return self.field_values[field.full_name]
        if t == FD.TYPE_MESSAGE:
            if depth >= self.max_depth:
                return st.just(message_factory.GetMessageClass(field.message_type)())
            return self.message(field.message_type, depth + 1)
        if t == FD.TYPE_STRING:
            if field.full_name in self.string_fields:
                return self.string_fields[field.full_name]
            plausible = st.sampled_from(self.names) if self.names else st.just("x")
            return st.one_of(st.just(""), plausible, plausible, plausible, plausible, st.text(max_size=24),
                             st.text(min_size=200, max_size=400))
        if t == FD.TYPE_BYTES:
            return st.binary(max_size=256)
        if t == FD.TYPE_BOOL:
            return st.booleans()
        if t == FD.TYPE_DOUBLE:
            return floats(64)
        if t == FD.TYPE_FLOAT:
            return floats(32)
        if t == FD.TYPE_ENUM:
            known = [v.number for v in field.enum_type.values]
            return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))  # proto3 enums are open
        if t in _INT_RANGES:
            return integers(*_INT_RANGES[t])
        raise NotImplementedError(f"field type {t} of {field.full_name}")

    def _consistent_tensor(self) -> st.SearchStrategy[Any]:
        """A Tensor whose bytes usually match its dtype and shape (so validation passes and deeper code runs)."""
        from herd.v1 import tensor_pb2
        from herd.wire.codec import ITEMSIZE

        @st.composite
        def build(draw: Any) -> Any:
            dtype = draw(st.sampled_from(sorted(ITEMSIZE)))
            shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=4))
            n = ITEMSIZE[dtype]
            for d in shape:
                n *= d
            data = draw(st.one_of(st.binary(min_size=n, max_size=n), st.just(bytes(n)), st.binary(max_size=n + 3)))
            return tensor_pb2.Tensor(dtype=dtype, shape=shape, data=data)

        return build()


def _unknown_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field ``number`` that the message does not define."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
