"""herd.wire.fastpb / replay_codec write and read the same protobuf as the generated classes, without copies."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from herd.v1 import replay_pb2, tensor_pb2
from herd.wire import fastpb, replay_codec
from herd.wire.codec import WireError, decode_map, encode_map, to_torch

FORCE_FAST = -1  # `small` that sends every message through the hand-written parser

ITEMS = {
    "observation": np.random.default_rng(0).random((3, 2, 5), dtype=np.float32),
    "step_type": np.array([[0, 1], [1, 2], [2, 0]], dtype=np.uint8),
    "done": np.array([[True, False], [False, True], [True, True]]),
    "action": np.arange(6, dtype=np.int64).reshape(3, 2),
    "half": np.ones((3, 2), np.float16),
    "wide": np.full((1, 2, 300), -7, np.int16),  # a dim >= 128: multi-byte varint
    "empty": np.zeros((3, 2, 0), np.float64),
    "strided": np.arange(24, dtype=np.float64).reshape(3, 2, 4)[:, :, ::2],  # not C-contiguous
    "big_endian": np.arange(6, dtype=">i4").reshape(3, 2),
}


def assert_same_arrays(got, want):
    assert set(got) == set(want)
    for name in want:
        expected = np.asarray(want[name])
        assert got[name].shape == expected.shape, name
        assert got[name].dtype == expected.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got[name], expected)


def test_message_fields_are_the_ones_this_module_knows():
    """A new field in these messages must be taught to fastpb (and this test) first."""
    def fields(cls):
        return {(f.number, f.name) for f in cls.DESCRIPTOR.fields}

    assert fields(replay_pb2.InsertRequest) == {(1, "table"), (2, "sequence_id"), (3, "items"), (4, "num_items"),
                                                (5, "priorities"), (6, "timeout_ms"), (7, "actor_id"),
                                                (8, "ack_every"), (9, "packed")}
    assert fields(replay_pb2.SampleResponse) == {(1, "keys"), (2, "probabilities"), (3, "data"), (4, "table_size")}
    assert fields(tensor_pb2.TensorMap) == {(1, "tensors")}
    assert fields(tensor_pb2.Tensor) == {(1, "dtype"), (2, "shape"), (3, "data")}


def test_insert_request_parses_with_the_generated_class():
    raw = replay_codec.encode_insert_request(table="t", items=ITEMS, num_items=2, sequence_id=2**40,
                                       priorities=[0.5, 2.0], timeout_ms=-3, actor_id="actor-1", ack_every=4)
    message = replay_pb2.InsertRequest.FromString(raw)
    assert (message.table, message.sequence_id, message.num_items) == ("t", 2**40, 2)
    assert (list(message.priorities), message.timeout_ms, message.actor_id) == ([0.5, 2.0], -3, "actor-1")
    assert message.ack_every == 4
    assert_same_arrays(decode_map(message.items), ITEMS)


def test_sample_response_parses_with_the_generated_class_and_back():
    raw = replay_codec.encode_sample_response(keys=np.array([1, 2**63 + 5], np.uint64), probabilities=[0.25, 1.0],
                                        data=ITEMS, table_size=9)
    message = replay_pb2.SampleResponse.FromString(raw)
    assert (list(message.keys), list(message.probabilities), message.table_size) == ([1, 2**63 + 5], [0.25, 1.0], 9)
    assert_same_arrays(decode_map(message.data), ITEMS)
    for small in (FORCE_FAST, 1 << 30):
        view = replay_codec.decode_sample_response(raw, small=small)
        assert (view.keys, view.probabilities, view.table_size) == ([1, 2**63 + 5], [0.25, 1.0], 9)
        assert_same_arrays({k: t.decode(k) for k, t in view.data.items()}, ITEMS)


def test_generated_messages_parse_here_and_views_need_no_copy():
    message = replay_pb2.InsertRequest(table="t", sequence_id=7, num_items=2, priorities=[1.0, 3.0],
                                       timeout_ms=250, actor_id="a", ack_every=3)
    encode_map(ITEMS, out=message.items)
    raw = message.SerializeToString()
    for small in (FORCE_FAST, 1 << 30):
        view = replay_codec.decode_insert_request(raw, small=small)
        assert (view.table, view.sequence_id, view.num_items) == ("t", 7, 2)
        assert (view.priorities, view.timeout_ms, view.actor_id, view.ack_every) == ([1.0, 3.0], 250, "a", 3)
        assert_same_arrays({k: t.decode(k) for k, t in view.items.items()}, ITEMS)
    fast = replay_codec.decode_insert_request(raw, small=FORCE_FAST)
    assert isinstance(fast.items["observation"].data, memoryview)  # a slice of `raw`, not a copy
    assert fast.items["observation"].data.obj is raw


def test_tensor_data_is_aligned_in_written_messages():
    for n in range(1, 12):
        items = {f"x{'y' * n}": np.zeros((n, 3), np.float64), "b": np.ones((2, n), np.uint8),
                 "c": np.ones((n, 5), np.int64)}
        raw = replay_codec.encode_sample_response(keys=list(range(n)), probabilities=[1.0] * n, data=items, table_size=n)
        base = np.frombuffer(raw, np.uint8).ctypes.data
        view = replay_codec.decode_sample_response(raw, small=FORCE_FAST)
        for name, tensor in view.data.items():
            offset = np.frombuffer(tensor.data, np.uint8).ctypes.data - base
            assert offset % fastpb.ALIGN == 0, (n, name, offset)
            array = tensor.decode(name)
            assert array.flags.aligned and not array.flags.writeable
            assert np.shares_memory(array, np.frombuffer(raw, np.uint8))  # zero-copy


def test_torch_tensors_and_bfloat16_are_encoded_by_the_codec():
    raw = replay_codec.encode_insert_request(table="t", num_items=1, items={
        "f": torch.arange(6, dtype=torch.float32).reshape(3, 1, 2),
        "bf": torch.ones((3, 1), dtype=torch.bfloat16),
    })
    message = replay_pb2.InsertRequest.FromString(raw)
    assert torch.equal(to_torch(message.items.tensors["f"]), torch.arange(6, dtype=torch.float32).reshape(3, 1, 2))
    assert torch.equal(to_torch(message.items.tensors["bf"]), torch.ones((3, 1), dtype=torch.bfloat16))
    with pytest.raises(WireError, match="bfloat16"):
        replay_codec.decode_insert_request(raw, small=FORCE_FAST).items["bf"].decode("bf")


def test_other_valid_encodings_parse_like_the_generated_class():
    """Unpacked repeated fields, reordered and unknown fields, repeated map keys, a value field seen twice."""
    def tensor(dtype: bytes, dims: bytes, data: bytes) -> bytes:
        return b"\x08" + dtype + dims + b"\x1a" + bytes([len(data)]) + data

    def entry(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
        body = extra + b"\x12" + bytes([len(value)]) + value + b"\x0a" + bytes([len(name)]) + name
        return b"\x0a" + bytes([len(body)]) + body

    unpacked = tensor(b"\x03", b"\x10\x02\x10\x01", bytes(8))  # shape as two unpacked varints
    reordered = b"\x1a\x04" + bytes(4) + b"\x12\x01\x01" + b"\x08\x03" + b"\x78\x05"  # + unknown field 15
    first = tensor(b"\x07", b"\x12\x01\x01", bytes(4))
    tmap = (entry(b"u", unpacked) + entry(b"r", reordered, extra=b"\x18\x01") + entry(b"o", reordered)
            + entry(b"d", first) + entry(b"d", tensor(b"\x03", b"\x12\x01\x02", bytes(8))) + b"\x10\x2a")
    raw = (b"\x20\x01" + b"\x0a\x01t" + b"\x1a" + bytes([len(tmap)]) + tmap + b"\x29" + bytes(8)
           + b"\x29" + bytes(8) + b"\x10\x05" + b"\x50\x01")  # priorities unpacked; unknown field 10
    want = replay_pb2.InsertRequest.FromString(raw)
    view = replay_codec.decode_insert_request(raw, small=FORCE_FAST)
    assert (view.table, view.sequence_id, view.num_items, view.priorities) == (
        want.table, want.sequence_id, want.num_items, list(want.priorities))
    assert set(view.items) == set(want.items.tensors) == {"u", "d", "o"}  # upb drops an entry with unknown fields
    for name, t in want.items.tensors.items():
        got = view.items[name]
        assert (got.dtype, got.shape, bytes(got.data)) == (t.dtype, list(t.shape), t.data), name


def test_malformed_messages_raise_wire_errors_only():
    raw = replay_codec.encode_insert_request(table="t", items=ITEMS, num_items=2, sequence_id=3, priorities=[1.0, 2.0])
    rng = random.Random(0)
    cases = [raw[:cut] for cut in range(0, len(raw), 7)]
    for _ in range(400):
        buf = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        cases.append(bytes(buf))
    cases += [b"\x00", b"\x0b\x01", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x1a\x05\x0a"]
    outcomes = {"ok": 0, "error": 0}
    for buf in cases:
        for small in (FORCE_FAST, 1 << 30):
            try:
                view = replay_codec.decode_insert_request(buf, small=small)
                for name, tensor in view.items.items():
                    tensor.decode(name)
                outcomes["ok"] += 1
            except WireError:
                outcomes["error"] += 1
    assert outcomes["error"] > 100  # most damage is caught; none of it raised anything but WireError


def test_bad_names_and_dtypes_are_refused_on_write():
    with pytest.raises(WireError):
        replay_codec.encode_insert_request(table="t", items={"": np.zeros((1, 1))}, num_items=1)
    with pytest.raises(WireError, match="complex"):
        replay_codec.encode_insert_request(table="t", items={"c": np.zeros((1, 1), np.complex64)}, num_items=1)
