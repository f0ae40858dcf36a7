"""Round trips through herd.wire.codec: every dtype, numpy and torch, odd shapes and strides."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from herd import types
from herd.v1 import replay_pb2, tensor_pb2
from herd.wire import codec

NUMPY_DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
SHAPES = [(), (0,), (3, 0, 2), (5,), (2, 3), (4, 3, 2)]


def _sample(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
        if a.size >= 2:  # the extremes must survive too
            a.flat[0], a.flat[1] = info.min, info.max
        return a
    a = np.asarray(rng.standard_normal(shape) * 100).astype(dt)
    if a.size >= 3:
        a.flat[0], a.flat[1], a.flat[2] = np.inf, -np.inf, np.nan
    return a


def _roundtrip(value, **kw) -> tensor_pb2.Tensor:
    """Encodes and sends through serialization, as the wire would."""
    return tensor_pb2.Tensor.FromString(codec.encode(value, **kw).SerializeToString())


def test_every_proto_dtype_is_supported():
    names = {v.name for v in tensor_pb2.DType.DESCRIPTOR.values} - {"DTYPE_UNSPECIFIED"}
    assert {n.removeprefix("DTYPE_").lower() for n in names} == set(NUMPY_DTYPES) | {"bfloat16"}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_roundtrip(dtype, shape):
    a = _sample(dtype, shape)
    t = _roundtrip(a)
    b = codec.decode(t)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    assert list(t.shape) == list(shape)
    assert len(t.data) == a.nbytes


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", NUMPY_DTYPES + ["bfloat16"])
def test_torch_roundtrip(dtype, shape):
    src = torch.from_numpy(_sample("float32" if dtype == "bfloat16" else dtype, shape).copy())
    x = src.to(getattr(torch, dtype))
    t = _roundtrip(x)
    y = codec.to_torch(t)
    assert y.dtype == x.dtype and tuple(y.shape) == tuple(x.shape)
    same_bits = torch.int16 if x.element_size() == 2 and x.is_floating_point() else None
    if same_bits is not None:  # compare bits: NaN != NaN
        assert torch.equal(y.view(same_bits), x.view(same_bits))
    elif x.is_floating_point():
        assert torch.allclose(y, x, equal_nan=True, rtol=0, atol=0)
    else:
        assert torch.equal(y, x)
    if dtype != "bfloat16":  # torch and numpy views of the same message agree
        np.testing.assert_array_equal(codec.decode(t), x.numpy())


def test_numpy_and_torch_encode_identically():
    a = _sample("float32", (4, 3))
    assert codec.encode(a) == codec.encode(torch.from_numpy(a))


def test_wire_bytes_are_little_endian_c_order():
    t = codec.encode(np.array([[1, 2], [3, 4]], dtype=np.int32).T)  # transposed input
    assert t.dtype == tensor_pb2.DTYPE_INT32 and list(t.shape) == [2, 2]
    assert t.data == b"".join(v.to_bytes(4, "little") for v in (1, 3, 2, 4))
    assert codec.encode(np.float32(1.0)).data == b"\x00\x00\x80\x3f"
    assert codec.encode(torch.tensor(1.0, dtype=torch.bfloat16)).data == b"\x80\x3f"


def test_big_endian_input_is_sent_little_endian():
    a = np.arange(6, dtype=">i4").reshape(2, 3)
    t = codec.encode(a)
    assert t.data == np.arange(6, dtype="<i4").tobytes()
    np.testing.assert_array_equal(codec.decode(t), a)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.T,
        lambda a: a[::2, ::-1],
        lambda a: np.broadcast_to(a[:1], a.shape),
        lambda a: np.asfortranarray(a),
    ],
    ids=["transposed", "strided-reversed", "broadcast", "fortran"],
)
def test_non_contiguous_numpy(make):
    v = make(_sample("float64", (4, 6)))
    assert not v.flags.c_contiguous
    np.testing.assert_array_equal(codec.decode(_roundtrip(v)), v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_non_contiguous_torch(dtype):
    base = torch.arange(24).reshape(4, 6).to(dtype)
    for v in (base.T, base[::2, 1::2], base[:1].expand(4, 6)):
        assert not v.is_contiguous()
        assert torch.equal(codec.to_torch(_roundtrip(v)), v)


def test_torch_tensor_needing_grad_and_numpy_scalars():
    w = torch.randn(3, requires_grad=True)
    assert torch.equal(codec.to_torch(codec.encode(w)), w.detach())
    s = codec.decode(codec.encode(np.int64(-7)))
    assert s.shape == () and s.dtype == np.int64 and s == -7


def test_decode_is_a_read_only_view_without_copy():
    data = np.arange(12, dtype="<f4").tobytes()
    a = codec.decode_parts(tensor_pb2.DTYPE_FLOAT32, [3, 4], data)
    assert np.shares_memory(a, np.frombuffer(data, np.uint8))
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    b = codec.decode(codec.encode(np.ones((2, 2), np.float32)))
    owner = b
    while isinstance(owner, np.ndarray):  # reshape's view -> frombuffer's array -> the bytes
        owner = owner.base
    assert isinstance(owner, bytes) and len(owner) == b.nbytes and not b.flags.writeable


def test_decode_parts_on_a_slice_of_a_buffer():
    """The parameter stream reassembles chunks into one buffer and decodes slices of it."""
    buf = bytearray(np.arange(10, dtype="<i8").tobytes())
    view = memoryview(buf)[16:48]
    a = codec.decode_parts(tensor_pb2.DTYPE_INT64, [2, 2], view)
    np.testing.assert_array_equal(a, [[2, 3], [4, 5]])
    assert np.shares_memory(a, np.frombuffer(buf, np.uint8))
    torch_a = codec.torch_from_parts(tensor_pb2.DTYPE_INT64, [2, 2], view)
    assert torch.equal(torch_a, torch.tensor([[2, 3], [4, 5]]))


def test_to_torch_is_writable_and_owns_its_memory():
    t = codec.encode(np.zeros(3, np.float32))
    x = codec.to_torch(t)
    x += 1  # no warning, no error
    np.testing.assert_array_equal(codec.decode(t), np.zeros(3, np.float32))


def _trajectory(t: int = 5, n: int = 3) -> dict[str, np.ndarray]:
    """N stacked trajectory items as an actor inserts them: [T + 1, N, ...] (herd/types.py)."""
    rng = np.random.default_rng(1)
    return {
        types.OBSERVATION: rng.standard_normal((t + 1, n, 4)).astype(np.float32),
        types.STEP_TYPE: np.full((t + 1, n), types.MID, np.uint8),
        types.REWARD: rng.standard_normal((t + 1, n)).astype(np.float32),
        types.DISCOUNT: np.ones((t + 1, n), np.float32),
        types.ACTION: rng.integers(0, 2, (t + 1, n)),
        types.BEHAVIOUR_LOGITS: rng.standard_normal((t + 1, n, 2)).astype(np.float32),
        types.PARAM_VERSION: np.full((1, n), 7, np.int64),
        types.CORE_STATE_PREFIX + "0": np.zeros((1, n, 8), np.float32),
    }


def test_map_roundtrip_written_in_place_into_a_request():
    items = _trajectory()
    req = replay_pb2.InsertRequest(table="queue", sequence_id=1, num_items=3)
    codec.encode_map(items, out=req.items)
    wire = replay_pb2.InsertRequest.FromString(req.SerializeToString())
    got = codec.decode_map(wire.items, names=list(items))
    assert got.keys() == items.keys()
    for k in items:
        assert got[k].dtype == items[k].dtype
        np.testing.assert_array_equal(got[k], items[k])
    assert types.split_batch(got, 3)[2][types.ACTION].shape == (6,)


def test_encode_map_replaces_previous_contents_and_torch_map():
    out = codec.encode_map({"a": np.zeros(2, np.int8)})
    codec.encode_map({"b": torch.ones(2, dtype=torch.bfloat16)}, out=out)
    assert list(out.tensors) == ["b"]
    assert torch.equal(codec.to_torch_map(out)["b"], torch.ones(2, dtype=torch.bfloat16))


@settings(max_examples=60, deadline=None)
@given(
    a=hnp.arrays(
        dtype=st.sampled_from([np.dtype(d) for d in NUMPY_DTYPES]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
    ),
    transpose=st.booleans(),
)
def test_property_roundtrip(a, transpose):
    if transpose:
        a = a.T
    b = codec.decode(_roundtrip(a))
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
