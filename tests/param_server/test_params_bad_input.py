"""Bad input for every ParameterService method: the exact status code, never UNKNOWN/INTERNAL,
and the server keeps serving afterwards."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import grpc
import numpy as np
import pytest

from herd.v1 import params_pb2, params_pb2_grpc, tensor_pb2
from herd.wire.channel import make_channel
from param_server.client import ParamClient

F32, BOOL = tensor_pb2.DTYPE_FLOAT32, tensor_pb2.DTYPE_BOOL
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def manifest(name="bad", version=1, tensors=(("w", F32, (2,)),), total=None) -> params_pb2.ParamsManifest:
    m = params_pb2.ParamsManifest(name=name, version=version)
    size = 0
    for tname, dtype, shape in tensors:
        m.tensors.add(name=tname, dtype=dtype, shape=shape)
        size += 4 * int(np.prod(shape)) if dtype == F32 else int(np.prod(shape))
    m.total_bytes = size if total is None else total
    return m


def chunk(offset=0, data=b"", m=None) -> params_pb2.ParamsChunk:
    c = params_pb2.ParamsChunk(offset=offset, data=data)
    if m is not None:
        c.manifest.CopyFrom(m)
    return c


PUBLISH_CASES = {
    "empty stream": ([], INVALID),
    "no manifest": ([chunk(0, bytes(8))], INVALID),
    "manifest repeated": ([chunk(0, bytes(4), manifest()), chunk(4, bytes(4), manifest())], INVALID),
    "dtype unspecified": ([chunk(0, bytes(8), manifest(tensors=[("w", 0, (2,))], total=8))], INVALID),
    "dtype unknown": ([chunk(0, bytes(8), manifest(tensors=[("w", 99, (2,))], total=8))], INVALID),
    "negative dim": ([chunk(0, b"", manifest(tensors=[("w", F32, (-1,))], total=0))], INVALID),
    "too many dims": ([chunk(0, bytes(4), manifest(tensors=[("w", F32, (1,) * 33)], total=4))], INVALID),
    "total_bytes != shapes": ([chunk(0, bytes(12), manifest(total=12))], INVALID),
    "huge total_bytes": ([chunk(0, bytes(8), manifest(total=1 << 62))], INVALID),
    "overlapping offsets": ([chunk(0, bytes(4), manifest()), chunk(2, bytes(6))], INVALID),
    "gapped offsets": ([chunk(0, bytes(2), manifest()), chunk(4, bytes(4))], INVALID),
    "first chunk not at 0": ([chunk(2, bytes(6), manifest())], INVALID),
    "data beyond total_bytes": ([chunk(0, bytes(4), manifest()), chunk(4, bytes(5))], INVALID),
    "incomplete stream": ([chunk(0, bytes(4), manifest())], INVALID),
    "manifest only, data missing": ([chunk(0, b"", manifest())], INVALID),
    "empty name": ([chunk(0, bytes(8), manifest(name=""))], INVALID),
    "name too long": ([chunk(0, bytes(8), manifest(name="x" * 257))], INVALID),
    "empty tensor name": ([chunk(0, bytes(8), manifest(tensors=[("", F32, (2,))]))], INVALID),
    "duplicate tensor names": ([chunk(0, bytes(8), manifest(tensors=[("w", F32, (1,)), ("w", F32, (1,))]))], INVALID),
    "negative version": ([chunk(0, bytes(8), manifest(version=-1))], INVALID),
    "bool bytes other than 0/1": ([chunk(0, b"\x00\x02", manifest(tensors=[("m", BOOL, (2,))]))], INVALID),
    "over max_total_bytes": (
        [chunk(0, bytes(1024), manifest(tensors=[("w", F32, (20_000,))]))], grpc.StatusCode.RESOURCE_EXHAUSTED),
    "absurd shape": (
        [chunk(0, b"", manifest(tensors=[("w", F32, (1 << 30, 1 << 30))], total=0))], INVALID),
}


@pytest.fixture(scope="module")
def stub(small_params) -> Iterator[params_pb2_grpc.ParameterServiceStub]:
    channel = make_channel(small_params.address)
    # A healthy name the server must keep serving through every bad request.
    with ParamClient(small_params.address) as client:
        client.publish("good", 0, {"w": np.arange(4, dtype=np.float32)})
    yield params_pb2_grpc.ParameterServiceStub(channel)
    channel.close()


def assert_still_serving(stub) -> None:
    names = [p.name for p in stub.List(params_pb2.ListRequest(), timeout=5).params]
    assert "good" in names and "bad" not in names
    chunks = list(stub.Fetch(params_pb2.FetchRequest(name="good"), timeout=5))
    assert chunks[0].manifest.version == 0 and chunks[0].data == np.arange(4, dtype=np.float32).tobytes()


def code_of(fn) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code()


@pytest.mark.parametrize("case", sorted(PUBLISH_CASES))
def test_publish_bad_input(stub, case):
    chunks, expected = PUBLISH_CASES[case]
    assert code_of(lambda: stub.Publish(iter(chunks), timeout=5)) == expected
    assert_still_serving(stub)


def test_publish_stale_version_is_failed_precondition(stub):
    good = chunk(0, bytes(8), manifest(name="stale", version=5))
    stub.Publish(iter([good]), timeout=5)
    for version in (5, 4, 0):
        again = chunk(0, bytes(8), manifest(name="stale", version=version))
        assert code_of(lambda: stub.Publish(iter([again]), timeout=5)) == grpc.StatusCode.FAILED_PRECONDITION
    assert_still_serving(stub)


def test_publish_cancelled_mid_stream(stub):
    release = threading.Event()

    def chunks():
        yield chunk(0, bytes(4), manifest(name="bad"))
        release.wait(5)

    future = stub.Publish.future(chunks(), timeout=5)
    time.sleep(0.2)
    future.cancel()
    release.set()
    assert future.cancelled() or future.exception() is not None
    assert_still_serving(stub)


@pytest.mark.parametrize(
    "request_, expected",
    [
        (params_pb2.FetchRequest(name="never-published"), grpc.StatusCode.NOT_FOUND),
        (params_pb2.FetchRequest(name=""), INVALID),
        (params_pb2.FetchRequest(name="good", min_version=-1), INVALID),
        (params_pb2.FetchRequest(name="y" * 300), INVALID),
    ],
    ids=["unknown name", "empty name", "negative min_version", "name too long"],
)
def test_fetch_bad_input(stub, request_, expected):
    assert code_of(lambda: list(stub.Fetch(request_, timeout=5))) == expected
    assert_still_serving(stub)


def test_fetch_when_current_is_an_empty_stream(stub):
    assert list(stub.Fetch(params_pb2.FetchRequest(name="good", min_version=1), timeout=5)) == []


@pytest.mark.parametrize(
    "request_",
    [
        params_pb2.SubscribeRequest(name=""),
        params_pb2.SubscribeRequest(name="good", after_version=-2),
        params_pb2.SubscribeRequest(name="z" * 300),
    ],
    ids=["empty name", "after_version below -1", "name too long"],
)
def test_subscribe_bad_input(stub, request_):
    assert code_of(lambda: next(stub.Subscribe(request_, timeout=5))) == INVALID
    assert_still_serving(stub)


def test_subscribe_unknown_name_waits_for_its_first_version(stub):
    # params.proto: "also when nothing was published yet: the stream waits".
    call = stub.Subscribe(params_pb2.SubscribeRequest(name="never-published-either", after_version=-1), timeout=0.5)
    assert code_of(lambda: next(call)) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert_still_serving(stub)


GARBAGE = {"bad tag": b"\xff", "truncated": b"\x0a\x05ab", "bad utf8": b"\x0a\x01\xff"}
MALFORMED = [
    pytest.param(method, data, id=f"{method}-{kind}")
    for method in ("Publish", "Fetch", "Subscribe", "List")
    for kind, data in GARBAGE.items()
    # ListRequest has no field 1: an unknown field is kept (proto3), not malformed.
    if not (method == "List" and kind == "bad utf8")
]


@pytest.mark.parametrize("method, garbage", MALFORMED)
def test_malformed_bytes_are_invalid_argument(small_params, stub, method, garbage):
    channel = make_channel(small_params.address)
    path = f"/herd.v1.ParameterService/{method}"
    calls = {
        "Publish": lambda: channel.stream_unary(path)(iter([garbage]), timeout=5),
        "Fetch": lambda: list(channel.unary_stream(path)(garbage, timeout=5)),
        "Subscribe": lambda: next(channel.unary_stream(path)(garbage, timeout=5)),
        "List": lambda: channel.unary_unary(path)(garbage, timeout=5),
    }
    try:
        assert code_of(calls[method]) == INVALID
    finally:
        channel.close()
    assert_still_serving(stub)


def test_too_many_subscribers_is_resource_exhausted(start_params):
    server = start_params(max_subscribers=2)
    channel = make_channel(server.address)
    stub = params_pb2_grpc.ParameterServiceStub(channel)
    try:
        with ParamClient(server.address) as client:
            client.publish("p", 0, {"w": np.zeros(1, np.float32)})
        open_calls = [stub.Subscribe(params_pb2.SubscribeRequest(name="p", after_version=-1), timeout=10)
                      for _ in range(2)]
        for call in open_calls:
            assert next(call).manifest.version == 0  # both streams are open on the server
        extra = stub.Subscribe(params_pb2.SubscribeRequest(name="p", after_version=-1), timeout=10)
        assert code_of(lambda: next(extra)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        open_calls[0].cancel()
        deadline = time.monotonic() + 5
        while True:  # the cancelled stream frees its slot within one wait slice
            again = stub.Subscribe(params_pb2.SubscribeRequest(name="p", after_version=-1), timeout=10)
            try:
                assert next(again).manifest.version == 0
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                time.sleep(0.05)
        again.cancel()
        open_calls[1].cancel()
    finally:
        channel.close()
