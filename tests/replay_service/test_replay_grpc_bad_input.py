"""Bad input to every ReplayService method: the exact status code, never UNKNOWN/INTERNAL, and the server serves on.

Requests are built by hand on a raw stub (the client would refuse most of them).
"""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from herd.v1 import replay_pb2, replay_pb2_grpc, tensor_pb2
from herd.wire.codec import encode_map
from replay_service.client import ReplayClient
from replay_service.config import TableConfig
from replay_service.protocol import INSERTED_KEYS_METADATA

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def insert_request(table: str = "uniform", items=None, num_items: int = 1, **fields) -> replay_pb2.InsertRequest:
    request = replay_pb2.InsertRequest(table=table, num_items=num_items, **fields)
    if items is None:
        items = {"id": np.zeros((3, num_items), np.int64), "observation": np.zeros((3, num_items, 4), np.float32)}
    encode_map(items, out=request.items)
    return request


def insert_error(stub, *requests: replay_pb2.InsertRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Insert(iter(requests), timeout=10))
    return e.value


@pytest.fixture(scope="module", autouse=True)
def fix_signature(stub):
    """Fixes the 'uniform' table's item structure: {id: int64 [3], observation: float32 [3, 4]}."""
    assert len(list(stub.Insert(iter([insert_request()]), timeout=10))) == 1


@pytest.fixture(params=["generated", "fastpb"])
def parser(request, monkeypatch):
    """Runs a test with the server parsing requests by the generated classes, then by herd.wire.fastpb."""
    from herd.wire import replay_codec

    monkeypatch.setattr(replay_codec, "SMALL_MESSAGE_BYTES", 1 << 30 if request.param == "generated" else -1)
    return request.param


def tensor_request(**tensor_fields) -> replay_pb2.InsertRequest:
    """An InsertRequest whose 'observation' tensor is replaced by a hand-made one."""
    request = insert_request()
    bad = request.items.tensors["observation"]
    bad.Clear()
    bad.MergeFrom(tensor_pb2.Tensor(**tensor_fields))
    return request


@pytest.mark.parametrize(
    "case, request_fn, code, match",
    [
        ("dtype unspecified", lambda: tensor_request(dtype=0, shape=[3, 1, 4], data=bytes(48)), INVALID, "dtype"),
        ("dtype unknown enum", lambda: tensor_request(dtype=99, shape=[3, 1, 4], data=bytes(48)), INVALID, "dtype"),
        ("bfloat16 (no numpy)", lambda: tensor_request(dtype=tensor_pb2.DTYPE_BFLOAT16, shape=[3, 1, 4],
                                                       data=bytes(24)), INVALID, "bfloat16"),
        ("wrong byte length", lambda: tensor_request(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[3, 1, 4],
                                                     data=bytes(47)), INVALID, "47 bytes"),
        ("negative dim", lambda: tensor_request(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[3, -1, 4], data=b""),
         INVALID, "negative"),
        ("absurd shape", lambda: tensor_request(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[2**40, 1, 2**20], data=b""),
         INVALID, "absurd"),
        ("bool bytes not 0/1", lambda: insert_request(items={"id": np.zeros((3, 1), np.int64),
                                                             "observation": np.zeros((3, 1, 4), np.float32),
                                                             "done": np.zeros((3, 1), bool)}), INVALID, "done"),
        ("num_items mismatch", lambda: _with(insert_request(), num_items=2), INVALID, "num_items"),
        ("num_items zero", lambda: _with(insert_request(), num_items=0), INVALID, "num_items"),
        ("N differs across fields", lambda: insert_request(items={"id": np.zeros((3, 1), np.int64),
                                                                  "observation": np.zeros((3, 2, 4), np.float32)}),
         INVALID, "observation"),
        ("tensor without item axis", lambda: insert_request(items={"id": np.zeros((3,), np.int64),
                                                                   "observation": np.zeros((3, 1, 4), np.float32)}),
         INVALID, "id"),
        ("no tensors", lambda: replay_pb2.InsertRequest(table="uniform", num_items=1), INVALID, "items"),
        ("priorities wrong length", lambda: insert_request(priorities=[1.0, 2.0]), INVALID, "priorities"),
        ("priority NaN", lambda: insert_request(priorities=[math.nan]), INVALID, "priorities"),
        ("priority Inf", lambda: insert_request(priorities=[math.inf]), INVALID, "priorities"),
        ("priority negative", lambda: insert_request(priorities=[-1.0]), INVALID, "priorities"),
        ("negative timeout_ms", lambda: insert_request(timeout_ms=-1), INVALID, "timeout_ms"),
        ("unknown table", lambda: insert_request(table="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
        ("empty request", lambda: replay_pb2.InsertRequest(), INVALID, "table"),
        ("other field names", lambda: insert_request(items={"id": np.zeros((3, 1), np.int64),
                                                            "obs": np.zeros((3, 1, 4), np.float32)}),
         INVALID, "obs"),
        ("other dtype", lambda: insert_request(items={"id": np.zeros((3, 1), np.int32),
                                                      "observation": np.zeros((3, 1, 4), np.float32)}),
         INVALID, "dtype"),
        ("other item shape", lambda: insert_request(items={"id": np.zeros((4, 1), np.int64),
                                                           "observation": np.zeros((4, 1, 4), np.float32)}),
         INVALID, "shape"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_insert(stub, assert_serves, parser, case, request_fn, code, match):
    request = request_fn()
    if case == "bool bytes not 0/1":
        request.items.tensors["done"].data = bytes([0, 2, 1])
    error = insert_error(stub, request)
    assert error.code() == code, error.details()
    assert match in error.details()
    assert_serves(stub)


def _with(request: replay_pb2.InsertRequest, **fields) -> replay_pb2.InsertRequest:
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def test_bad_request_ends_the_stream_but_earlier_acks_stand(stub, assert_serves, parser):
    good = insert_request(items={"id": np.full((3, 1), 424242, np.int64), "observation": np.zeros((3, 1, 4), np.float32)},
                          sequence_id=1)
    bad = insert_request(table="nope", sequence_id=2)
    never = insert_request(sequence_id=3)
    call = stub.Insert(iter([good, bad, never]), timeout=10)
    first = next(call)
    assert first.sequence_id == 1 and len(first.keys) == 1
    with pytest.raises(grpc.RpcError) as e:
        next(call)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    info = stub.Info(replay_pb2.InfoRequest(tables=["uniform"]), timeout=10).tables[0]
    assert info.num_inserts >= 2  # the fixture's item and `good`; `never` was not processed
    assert_serves(stub)


def test_insert_rate_limit_timeout_is_deadline_exceeded_with_partial_keys(stub, assert_serves, parser):
    items = {"id": np.zeros((3, 3), np.int64), "observation": np.zeros((3, 3, 4), np.float32)}
    error = insert_error(stub, insert_request(table="small", items=items, num_items=3, timeout_ms=200))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    keys = dict(error.trailing_metadata())[INSERTED_KEYS_METADATA]
    assert len(keys.split(",")) == 2  # the queue holds 2: those got in, the third did not
    sampled = stub.Sample(replay_pb2.SampleRequest(table="small", batch_size=2, num_batches=1), timeout=10)
    assert [list(r.keys) for r in sampled] == [[int(k) for k in keys.split(",")]]
    assert_serves(stub)


@pytest.mark.parametrize(
    "fields, code, match",
    [
        ({"table": "uniform", "batch_size": 0}, INVALID, "batch_size"),
        ({"table": "uniform", "batch_size": 100_001}, grpc.StatusCode.RESOURCE_EXHAUSTED, "batch_size"),
        ({"table": "uniform", "batch_size": 2**32 - 1}, grpc.StatusCode.RESOURCE_EXHAUSTED, "batch_size"),
        ({"table": "queue", "batch_size": 65}, INVALID, "batch_size"),  # more than the queue can ever hold
        ({"table": "uniform", "batch_size": 1, "timeout_ms": -5}, INVALID, "timeout_ms"),
        ({"table": "nope", "batch_size": 1}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({}, INVALID, "table"),
        ({"table": "queue", "batch_size": 1, "timeout_ms": 200}, grpc.StatusCode.DEADLINE_EXCEEDED, "within"),
    ],
)
def test_bad_sample(stub, assert_serves, fields, code, match):
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Sample(replay_pb2.SampleRequest(num_batches=1, **fields), timeout=10))
    assert e.value.code() == code, e.value.details()
    assert match in e.value.details()
    assert_serves(stub)


def test_client_side_bad_batch_sizes():
    with ReplayClient("127.0.0.1:1") as client:  # never connects: rejected before sending
        with pytest.raises(ValueError):
            client.table("t").sample(-1, timeout=1)
        with pytest.raises(ValueError):
            client.table("t").sample_stream(0)


@pytest.mark.parametrize(
    "fields, code, match",
    [
        ({"table": "prio", "keys": [1, 2], "priorities": [1.0]}, INVALID, "priorities"),
        ({"table": "prio", "keys": [1], "priorities": [math.nan]}, INVALID, "priorities"),
        ({"table": "prio", "keys": [1], "priorities": [math.inf]}, INVALID, "priorities"),
        ({"table": "prio", "keys": [1], "priorities": [-0.5]}, INVALID, "priorities"),
        ({"table": "nope", "keys": [1], "priorities": [1.0]}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({}, INVALID, "table"),
    ],
)
def test_bad_update_priorities(stub, assert_serves, fields, code, match):
    with pytest.raises(grpc.RpcError) as e:
        stub.UpdatePriorities(replay_pb2.UpdatePrioritiesRequest(**fields), timeout=10)
    assert e.value.code() == code, e.value.details()
    assert match in e.value.details()
    assert_serves(stub)


def test_update_priorities_with_unknown_keys_is_ok(stub, assert_serves):
    request = replay_pb2.UpdatePrioritiesRequest(table="prio", keys=[10**12, 10**12 + 1], priorities=[1.0, 2.0])
    assert stub.UpdatePriorities(request, timeout=10).num_updated == 0
    assert stub.UpdatePriorities(replay_pb2.UpdatePrioritiesRequest(table="prio"), timeout=10).num_updated == 0
    assert_serves(stub)


def test_info_unknown_table_is_not_found(stub, assert_serves):
    with pytest.raises(grpc.RpcError) as e:
        stub.Info(replay_pb2.InfoRequest(tables=["uniform", "nope"]), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        stub.Info(replay_pb2.InfoRequest(tables=[""]), timeout=10)
    assert e.value.code() == INVALID
    assert_serves(stub)


def test_checkpoint_without_dir_is_failed_precondition(stub, assert_serves):
    with pytest.raises(grpc.RpcError) as e:
        stub.Checkpoint(replay_pb2.CheckpointRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "checkpoint_dir" in e.value.details()
    assert_serves(stub)


def test_oversized_messages_are_resource_exhausted(start_replay, assert_serves):
    tables = (TableConfig.uniform_replay("scratch", 100), TableConfig.uniform_replay("big", 100))
    server = start_replay(max_message_mb=1, tables=tables)
    channel = grpc.insecure_channel(server.address, options=[("grpc.max_send_message_length", 64 << 20)])
    small_stub = replay_pb2_grpc.ReplayServiceStub(channel)
    try:
        big = {"id": np.zeros((3, 1), np.int64), "observation": np.zeros((3, 1, 100_000), np.float32)}  # 1.2 MB
        error = insert_error(small_stub, insert_request(table="big", items=big))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        assert_serves(small_stub)
        # A batch that can never fit in one message (20 items x 48 KB > 1 MiB) is refused up front.
        mid = {"id": np.zeros((3, 1), np.int64), "observation": np.zeros((3, 1, 4000), np.float32)}
        list(small_stub.Insert(iter([insert_request(table="big", items=mid)]), timeout=10))
        with pytest.raises(grpc.RpcError) as e:
            list(small_stub.Sample(replay_pb2.SampleRequest(table="big", batch_size=25, num_batches=1),
                                   timeout=10))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "batch_size" in e.value.details()
        assert_serves(small_stub)
        # Through the client: the oversized insert fails alone, the stream goes on with the next.
        with ReplayClient(server.address) as client:
            table = client.table("big")
            with pytest.raises(Exception) as exc:
                table.insert(big, timeout=10)
            assert type(exc.value).__name__ == "ResourceExhaustedError"
            assert len(table.insert(mid, timeout=10)) == 1
        with ReplayClient(server.address, max_message_bytes=1 << 20) as client:
            with pytest.raises(Exception) as exc:  # over the client's own limit: refused before sending
                client.table("big").insert(big, timeout=10)
            assert type(exc.value).__name__ == "ResourceExhaustedError"
    finally:
        channel.close()
