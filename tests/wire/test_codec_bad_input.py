"""Malformed tensors are rejected with a WireError (INVALID_ARGUMENT) that names the tensor."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from herd.v1 import tensor_pb2
from herd.wire import codec
from herd.wire.codec import WireError


def _bad(dtype=tensor_pb2.DTYPE_FLOAT32, shape=(2, 2), data=b"\0" * 16) -> tensor_pb2.Tensor:
    # Through the wire, so the checks see what a server would parse.
    t = tensor_pb2.Tensor(dtype=dtype, shape=shape, data=data)
    return tensor_pb2.Tensor.FromString(t.SerializeToString())


def _decoders():
    return [codec.decode, codec.to_torch]


@pytest.mark.parametrize("decoder", _decoders(), ids=["numpy", "torch"])
@pytest.mark.parametrize(
    "tensor, message",
    [
        (_bad(data=b"\0" * 12), "tensor 'observation': 12 bytes, expected 16 for float32[2, 2]"),
        (_bad(shape=(), data=b""), "tensor 'observation': 0 bytes, expected 4 for float32[]"),
        (_bad(dtype=99), "tensor 'observation': dtype unknown value 99"),
        (_bad(dtype=tensor_pb2.DTYPE_UNSPECIFIED), "tensor 'observation': dtype unspecified (0)"),
        (_bad(shape=(2, -2)), "tensor 'observation': negative dimension -2 in shape [2, -2]"),
        (_bad(shape=(2**40, 2**40, 0), data=b""), "tensor 'observation': absurd shape"),
        (_bad(shape=(2**62, 4), data=b""), "tensor 'observation': absurd shape"),
        (_bad(shape=(1,) * 33, data=b"\0" * 4), "tensor 'observation': 33 dimensions, at most 32"),
        (_bad(dtype=tensor_pb2.DTYPE_BOOL, shape=(3,), data=b"\x00\x01\x02"), "tensor 'observation': bool bytes"),
    ],
    ids=["short", "scalar-empty", "unknown-dtype", "unspecified", "negative-dim", "absurd", "huge", "ndim", "bool"],
)
def test_bad_tensor(decoder, tensor, message):
    with pytest.raises(WireError, match=re.escape(message)):
        decoder(tensor, name="observation")


def test_wire_error_is_a_value_error():
    assert issubclass(WireError, ValueError)


def test_bfloat16_needs_torch_to_decode():
    t = codec.encode(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(WireError, match=r"tensor 'w': bfloat16 has no numpy dtype; decode it with to_torch"):
        codec.decode(t, name="w")


def test_decode_map_names_the_bad_field():
    tm = codec.encode_map({"reward": np.zeros(3, np.float32), "action": np.zeros(3, np.int64)})
    tm.tensors["reward"].data = b"\0" * 8
    with pytest.raises(WireError, match=re.escape("tensor 'reward': 8 bytes, expected 12 for float32[3]")):
        codec.decode_map(tm)
    with pytest.raises(WireError, match=re.escape("missing ['discount'], unexpected ['action']")):
        codec.decode_map(tm, names=["reward", "discount"])


@pytest.mark.parametrize(
    "value",
    [
        np.zeros(2, np.complex64),
        np.zeros(2, np.uint16),
        np.zeros(2, np.uint64),
        np.array(["a"]),
        np.array([object()]),
        np.zeros(2, "datetime64[s]"),
        torch.zeros(2, dtype=torch.complex64),
        torch.zeros(2, dtype=torch.float8_e4m3fn),
    ],
    ids=["complex", "uint16", "uint64", "str", "object", "datetime", "torch-complex", "torch-float8"],
)
def test_unsupported_dtype_on_encode(value):
    with pytest.raises(WireError, match=r"tensor 'x': unsupported dtype"):
        codec.encode(value, name="x")


def test_non_array_on_encode_and_bad_names():
    with pytest.raises(TypeError, match="tensor 'x': expected a numpy array or torch tensor, got list"):
        codec.encode([1.0, 2.0], name="x")  # type: ignore[arg-type]
    with pytest.raises(WireError, match="non-empty"):
        codec.encode_map({"": np.zeros(1)})
    with pytest.raises(WireError, match="tensor 'x': 33 dimensions, at most 32"):
        codec.encode(np.zeros((1,) * 33), name="x")
