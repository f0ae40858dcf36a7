"""Regression tests for what the RPC fuzzer (test_rpc_fuzz.py) found, and the edge values it covers.

Found: undecodable request bytes were answered ``INTERNAL: Exception deserializing request!``
by every method with a generated request parser (replay Sample / UpdatePriorities / Info /
Checkpoint, every actor and learner method, health); now ``INVALID_ARGUMENT`` naming the
message (``herd.wire.malformed``, installed by ``start_server``).
"""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from herd.options import ServerOptions
from herd.testing.servers import ServiceThread
from herd.v1 import actor_pb2, actor_pb2_grpc, common_pb2, replay_pb2
from herd.wire.channel import make_channel
from herd.wire.replay_codec import encode_insert_request
from herd.wire.server import start_server
from herd.wire.status import rpc_errors
from replay_service.config import ReplayServiceConfig, TableConfig
from replay_service.main import serve as serve_replay

GARBAGE = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length-delimited, with a length far past the end
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def replay():
    tables = (TableConfig.uniform_replay("uniform", 10),
              TableConfig(name="prio", sampler="prioritized", remover="fifo", max_size=10, max_times_sampled=0,
                          rate_limiter="min_size", priority_exponent=1.0))
    server = ServiceThread(serve_replay, ReplayServiceConfig(server=ServerOptions(grace_seconds=0.5), tables=tables),
                           name="replay")
    channel = make_channel(server.address, retry=False)
    yield channel
    channel.close()
    server.stop()


def _status(channel: grpc.Channel, path: str, payload: bytes, *, streaming: bool = False) -> tuple[grpc.StatusCode, str]:
    try:
        if streaming:
            list(channel.unary_stream(path)(payload, timeout=5))
        else:
            channel.unary_unary(path)(payload, timeout=5)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("method, streaming", [("Sample", True), ("UpdatePriorities", False), ("Info", False),
                                               ("Checkpoint", False)])
def test_replay_malformed_bytes_invalid_argument(replay, method, streaming):
    code, details = _status(replay, f"/herd.v1.ReplayService/{method}", GARBAGE, streaming=streaming)
    assert code == INVALID and "malformed request" in details
    assert replay.unary_unary("/herd.v1.ReplayService/Info", request_serializer=replay_pb2.InfoRequest.SerializeToString,
                              response_deserializer=replay_pb2.InfoResponse.FromString)(replay_pb2.InfoRequest(),
                                                                                          timeout=5).tables


def test_any_servicer_and_health_get_invalid_argument():
    """The interceptor covers servicers without ``rpc_errors`` too (here the standard health service)."""

    class Plain(actor_pb2_grpc.ActorServiceServicer):
        def Status(self, request, context):
            return actor_pb2.ActorStatus(actor_id="plain")

        @rpc_errors
        def Pause(self, request, context):
            return common_pb2.PauseResponse()

    running = start_server(lambda s: actor_pb2_grpc.add_ActorServiceServicer_to_server(Plain(), s),
                           ["herd.v1.ActorService"])
    try:
        with make_channel(f"127.0.0.1:{running.port}", retry=False) as ch:
            for path in ("/herd.v1.ActorService/Status", "/herd.v1.ActorService/Pause", "/grpc.health.v1.Health/Check"):
                code, details = _status(ch, path, GARBAGE)
                assert code == INVALID and path in details, (path, code, details)
            stub = actor_pb2_grpc.ActorServiceStub(ch)
            assert stub.Status(actor_pb2.ActorStatusRequest(), timeout=5).actor_id == "plain"
            code, _ = _status(ch, "/grpc.health.v1.Health/Watch", GARBAGE, streaming=True)
            assert code == INVALID
    finally:
        running.stop(0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
def test_non_finite_priorities_invalid_argument(replay, bad):
    items = {"obs": np.zeros((2, 1, 3), np.float32)}
    insert = replay.stream_stream("/herd.v1.ReplayService/Insert",
                                  response_deserializer=replay_pb2.InsertResponse.FromString)
    with pytest.raises(grpc.RpcError) as e:
        list(insert(iter([encode_insert_request(table="prio", items=items, num_items=1, priorities=[bad])]),
                    timeout=5))
    assert e.value.code() == INVALID and "priorities" in e.value.details()
    keys = list(insert(iter([encode_insert_request(table="prio", items=items, num_items=1)]), timeout=5))[0].keys
    update = replay.unary_unary("/herd.v1.ReplayService/UpdatePriorities",
                                request_serializer=replay_pb2.UpdatePrioritiesRequest.SerializeToString,
                                response_deserializer=replay_pb2.UpdatePrioritiesResponse.FromString)
    with pytest.raises(grpc.RpcError) as e:
        update(replay_pb2.UpdatePrioritiesRequest(table="prio", keys=list(keys), priorities=[bad]), timeout=5)
    assert e.value.code() == INVALID and "priorities" in e.value.details()
    assert update(replay_pb2.UpdatePrioritiesRequest(table="prio", keys=list(keys), priorities=[2.0]),
                  timeout=5).num_updated == 1


@pytest.mark.parametrize("timeout_ms, code", [(-1, INVALID), (-(2**63), INVALID), (0, grpc.StatusCode.OK),
                                              (1, grpc.StatusCode.OK), (2**63 - 1, grpc.StatusCode.OK)])
def test_sample_timeouts_negative_zero_absurd(replay, timeout_ms, code):
    insert = replay.stream_stream("/herd.v1.ReplayService/Insert",
                                  response_deserializer=replay_pb2.InsertResponse.FromString)
    list(insert(iter([encode_insert_request(table="uniform", items={"obs": np.zeros((2, 1, 3), np.float32)},
                                            num_items=1)]), timeout=5))
    request = replay_pb2.SampleRequest(table="uniform", batch_size=1, num_batches=1, timeout_ms=timeout_ms)
    got, details = _status(replay, "/herd.v1.ReplayService/Sample", request.SerializeToString(), streaming=True)
    assert got == code, details
    if code == INVALID:
        assert "timeout_ms" in details


@pytest.mark.parametrize("timeout_ms", [-1, -(2**63)])
def test_insert_negative_timeout_invalid_argument(replay, timeout_ms):
    insert = replay.stream_stream("/herd.v1.ReplayService/Insert",
                                  response_deserializer=replay_pb2.InsertResponse.FromString)
    with pytest.raises(grpc.RpcError) as e:
        list(insert(iter([encode_insert_request(table="uniform", items={"obs": np.zeros((2, 1, 3), np.float32)},
                                                num_items=1, timeout_ms=timeout_ms)]), timeout=5))
    assert e.value.code() == INVALID and "timeout_ms" in e.value.details()
