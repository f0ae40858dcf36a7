"""Cutting a version into ParamsChunk messages and reassembling it (param_server.chunks)."""

from __future__ import annotations

import numpy as np
import pytest

from herd.v1 import tensor_pb2
from herd.wire.codec import WireError, decode_parts, encode_parts, torch_from_parts
from herd.wire.status import ResourceExhaustedError
from param_server.chunks import (
    ITEMSIZE,
    Assembler,
    ParamsChunk,
    ParamsManifest,
    check_manifest,
    decode_tensors,
    iter_chunks,
    serialized_chunks,
)


def _manifest(tensors: dict[str, np.ndarray], name: str = "policy", version: int = 0):
    manifest = ParamsManifest(name=name, version=version)
    parts = []
    for key, value in tensors.items():
        dtype, shape, data = encode_parts(value, name=key)
        manifest.tensors.add(name=key, dtype=dtype, shape=shape)
        parts.append(data)
    manifest.total_bytes = sum(len(p) for p in parts)
    return manifest, parts


def test_itemsize_table_agrees_with_the_codec():
    assert set(ITEMSIZE) == {v for v in tensor_pb2.DType.values() if v != tensor_pb2.DTYPE_UNSPECIFIED}
    for dtype, size in ITEMSIZE.items():
        data = bytes(3 * size)
        torch_from_parts(dtype, [3], data)  # the codec accepts exactly this many bytes ...
        with pytest.raises(WireError):
            torch_from_parts(dtype, [3], data + b"\0")  # ... and no other count
        if dtype != tensor_pb2.DTYPE_BFLOAT16:
            assert decode_parts(dtype, [3], data).nbytes == 3 * size


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 20])
def test_chunks_round_trip_across_tensor_boundaries(chunk_bytes):
    rng = np.random.default_rng(0)
    tensors = {
        "a": rng.standard_normal((5, 3)).astype(np.float32),
        "empty": np.zeros((0, 4), np.int64),
        "scalar": np.float64(2.5),
        "b": rng.integers(0, 255, 13).astype(np.uint8),
    }
    manifest, parts = _manifest(tensors)
    chunks = list(iter_chunks(manifest, parts, chunk_bytes))
    assert chunks[0].HasField("manifest") and not any(c.HasField("manifest") for c in chunks[1:])
    assert all(len(c.data) <= chunk_bytes for c in chunks)
    assert len(chunks) == max(1, -(-manifest.total_bytes // chunk_bytes))
    assembler = Assembler()
    for chunk in chunks:
        assembler.add(ParamsChunk.FromString(chunk.SerializeToString()))
    out = decode_tensors(assembler.finish())
    assert list(out) == list(tensors)
    # The fast serializer writes exactly what protobuf would.
    assert list(serialized_chunks(manifest, parts, chunk_bytes)) == [c.SerializeToString() for c in chunks]
    for key, value in tensors.items():
        np.testing.assert_array_equal(out[key], value)


def test_zero_byte_version_is_one_manifest_chunk():
    manifest, parts = _manifest({"e": np.zeros(0, np.float32)})
    (chunk,) = iter_chunks(manifest, parts, 1024)
    assert list(serialized_chunks(manifest, parts, 1024)) == [chunk.SerializeToString()]
    assembler = Assembler()
    assembler.add(chunk)
    assert assembler.complete
    assert decode_tensors(assembler.finish())["e"].shape == (0,)


def test_check_manifest_limits_and_mismatch():
    manifest, _ = _manifest({"w": np.zeros(100, np.float32)})
    assert check_manifest(manifest) == [400]
    with pytest.raises(ResourceExhaustedError):
        check_manifest(manifest, max_total_bytes=399)
    manifest.total_bytes = 401
    with pytest.raises(ValueError, match="total_bytes 401"):
        check_manifest(manifest)


def test_raw_bfloat16_for_the_server():
    torch = pytest.importorskip("torch")
    value = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    manifest, parts = _manifest({"x": value})
    assembler = Assembler()
    for chunk in iter_chunks(manifest, parts, 3):
        assembler.add(chunk)
    assembled = assembler.finish()
    raw = decode_tensors(assembled, bfloat16="raw")["x"]
    assert raw.dtype == np.uint16 and raw.tobytes() == parts[0]
    assert torch.equal(decode_tensors(assembled)["x"], value)


def test_serialized_chunks_match_protobuf_for_long_lengths_and_offsets():
    # Varint lengths of 1..3 bytes and offsets far into a large set.
    manifest, _ = _manifest({"w": np.zeros(1, np.float32)})
    data = bytes(range(256)) * 1100  # 281,600 bytes
    manifest.total_bytes = len(data)
    for chunk_bytes in (127, 128, 16383, 16384, 100_000):
        expected = [c.SerializeToString() for c in iter_chunks(manifest, [data], chunk_bytes)]
        assert list(serialized_chunks(manifest, [data], chunk_bytes)) == expected


def test_checksum_is_the_crc32_of_the_data():
    import zlib

    manifest, parts = _manifest({"a": np.arange(1000, dtype=np.int32)})
    assembler = Assembler(checksum=True)
    for chunk in iter_chunks(manifest, parts, 333):
        assembler.add(chunk)
    assert assembler.finish().crc32 == zlib.crc32(parts[0])
