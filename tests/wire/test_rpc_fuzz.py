"""Property-based bad input: every method of every Herd service, random messages, real servers.

The methods are enumerated from the proto descriptors (a new method is fuzzed without touching
this file; a new *service* fails :func:`test_every_service_has_a_server` until it gets one).
Requests are drawn by ``herd.testing.fuzz`` from the request type's descriptor and sent as
bytes over loopback gRPC to the real servicers. The property: the status is OK or one of the
bad-input codes of DESIGN.md §3 — never UNKNOWN / INTERNAL — and the server still answers a
valid request afterwards. DEADLINE_EXCEEDED counts only for methods that legitimately block
(rate limiters, subscriptions), whose calls carry a short client deadline.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterator

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from herd.testing.fuzz import MessageFuzzer, floats, integers, json_text
from herd.v1 import actor_pb2, learner_pb2, params_pb2, replay_pb2
from herd.wire.channel import make_channel

SERVICE_MODULES = (replay_pb2, params_pb2, actor_pb2, learner_pb2)
ALLOWED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION,
}
BLOCKING = {
    "herd.v1.ReplayService.Insert",  # waits while the rate limiter forbids inserts (a full queue)
    "herd.v1.ReplayService.Sample",  # waits for items; num_batches = 0 streams until cancelled
    "herd.v1.ParameterService.Subscribe",  # streams until cancelled
}
BLOCKING_DEADLINE = 0.25
DEADLINE = 10.0
TABLES = ("queue", "uniform", "prio")
PARAM_NAME = "policy"
FAST_EXAMPLES = int(os.environ.get("HERD_FUZZ_EXAMPLES", "40"))


def _methods() -> list[Any]:
    return [m for module in SERVICE_MODULES for service in module.DESCRIPTOR.services_by_name.values()
            for m in service.methods]


METHODS = _methods()


# ------------------------------------------------------------------ servers


@dataclasses.dataclass
class Servers:
    addresses: dict[str, str]  # service full name -> host:port
    probes: dict[str, Callable[[grpc.Channel], None]]  # a valid request per service


def _replay(tmp: str) -> Iterator[tuple[str, Any]]:
    from herd.options import ServerOptions
    from herd.testing.servers import ServiceThread
    from replay_service.config import ReplayServiceConfig, TableConfig
    from replay_service.main import serve

    tables = (TableConfig.queue("queue", 8), TableConfig.uniform_replay("uniform", 50),
              TableConfig(name="prio", sampler="prioritized", remover="fifo", max_size=50, max_times_sampled=0,
                          rate_limiter="min_size", priority_exponent=1.0))
    config = ReplayServiceConfig(server=ServerOptions(grace_seconds=0.5, max_message_mb=8), tables=tables,
                                 checkpoint_dir=os.path.join(tmp, "replay"))
    server = ServiceThread(serve, config, name="fuzzed replay")
    yield server.address, server
    server.stop()


def _params(tmp: str) -> Iterator[tuple[str, Any]]:
    from herd.options import ServerOptions
    from herd.testing.servers import ServiceThread
    from param_server.config import ParamServerConfig
    from param_server.main import serve

    config = ParamServerConfig(server=ServerOptions(grace_seconds=0.5), data_dir=os.path.join(tmp, "params"),
                               max_total_bytes=1 << 20, max_subscribers=4)
    server = ServiceThread(serve, config, name="fuzzed params")
    yield server.address, server
    server.stop()


def _control_servers() -> Iterator[tuple[str, str]]:
    """Lightweight real actor and learner servicers (CartPole, tiny agent), served as their main.py does."""
    from actor_service.loop import Actor
    from actor_service.servicer import ActorServicer, EpisodeWindow
    from herd.agents.impala.acting import ImpalaPolicy
    from herd.agents.impala.learning import ImpalaUpdater
    from herd.agents.impala.config import ImpalaConfig
    from herd.adders import SequenceAdder
    from herd.control import PauseGate
    from herd.envs.batched import make_batched_env
    from herd.envs.registry import env_spec
    from herd.v1 import actor_pb2_grpc, learner_pb2_grpc
    from herd.wire.server import start_server
    from learner_service.learner import Learner
    from learner_service.servicer import LearnerServicer
    from param_server.store import ParameterStore
    from replay_service.config import TableConfig, make_table

    info = env_spec("gym:CartPole-v1")
    cfg = ImpalaConfig.classic_control()
    actor = Actor(make_batched_env("gym:CartPole-v1", 2, 0), ImpalaPolicy(cfg, info, seed=0),
                  SequenceAdder(make_table(TableConfig.queue("q", 8)), 6, 5), ParameterStore())
    actor_servicer = ActorServicer(actor, PauseGate(), EpisodeWindow())
    learner = Learner(ImpalaUpdater(cfg, info, 1000, 0), make_table(TableConfig.queue("q", 8)), ParameterStore(), 8)
    learner_servicer = LearnerServicer(learner, PauseGate(), "learner-fuzz", lambda: "learner-fuzz")
    actor_server = start_server(lambda s: actor_pb2_grpc.add_ActorServiceServicer_to_server(actor_servicer, s),
                                ["herd.v1.ActorService"])
    learner_server = start_server(
        lambda s: learner_pb2_grpc.add_LearnerServiceServicer_to_server(learner_servicer, s), ["herd.v1.LearnerService"])
    yield f"127.0.0.1:{actor_server.port}", f"127.0.0.1:{learner_server.port}"
    actor_server.stop(0)
    learner_server.stop(0)


def _probe(method: str, request: Any, response_type: Any, streaming: bool = False) -> Callable[[grpc.Channel], None]:
    def probe(channel: grpc.Channel) -> None:
        if streaming:
            call = channel.unary_stream(method, request_serializer=type(request).SerializeToString,
                                        response_deserializer=response_type.FromString)
            list(call(request, timeout=DEADLINE))
        else:
            call = channel.unary_unary(method, request_serializer=type(request).SerializeToString,
                                       response_deserializer=response_type.FromString)
            call(request, timeout=DEADLINE)

    return probe


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[Servers]:
    tmp = str(tmp_path_factory.mktemp("fuzz"))
    replay, params, control = _replay(tmp), _params(tmp), _control_servers()
    replay_address, _ = next(replay)
    params_address, _ = next(params)
    actor_address, learner_address = next(control)
    yield Servers(
        addresses={
            "herd.v1.ReplayService": replay_address,
            "herd.v1.ParameterService": params_address,
            "herd.v1.ActorService": actor_address,
            "herd.v1.LearnerService": learner_address,
        },
        probes={
            "herd.v1.ReplayService": _probe("/herd.v1.ReplayService/Info", replay_pb2.InfoRequest(),
                                            replay_pb2.InfoResponse),
            "herd.v1.ParameterService": _probe("/herd.v1.ParameterService/List", params_pb2.ListRequest(),
                                               params_pb2.ListResponse),
            "herd.v1.ActorService": _probe("/herd.v1.ActorService/Status", actor_pb2.ActorStatusRequest(),
                                           actor_pb2.ActorStatus),
            "herd.v1.LearnerService": _probe("/herd.v1.LearnerService/Status", learner_pb2.LearnerStatusRequest(),
                                             learner_pb2.LearnerStatus),
        },
    )
    for gen in (control, params, replay):
        next(gen, None)


@pytest.fixture(scope="module")
def channels(servers) -> Iterator[dict[str, grpc.Channel]]:
    opened = {name: make_channel(address, retry=False) for name, address in servers.addresses.items()}
    yield opened
    for channel in opened.values():
        channel.close()


# ------------------------------------------------------------------ the fuzzer


def _fuzzer() -> MessageFuzzer:
    from herd.agents.impala.config import ImpalaConfig

    agent_keys = ["agent", *(f.name for f in dataclasses.fields(ImpalaConfig))]
    small = lambda hi: st.one_of(st.integers(0, 4), integers(0, hi))  # noqa: E731
    timeout = st.one_of(st.sampled_from([0, 1, 20, 100, -1]), integers(-(2**63), 2**63 - 1))
    return MessageFuzzer(
        names=[*TABLES, PARAM_NAME, "no-such-name", "x" * 300, "a/b", "\x00", "é"],
        string_fields={"herd.v1.ReloadConfigRequest.config_json": json_text(agent_keys)},
        field_values={
            "herd.v1.SampleRequest.batch_size": small(2**32 - 1),
            "herd.v1.SampleRequest.num_batches": small(2**64 - 1),
            "herd.v1.SampleRequest.timeout_ms": timeout,
            "herd.v1.InsertRequest.num_items": small(2**32 - 1),
            "herd.v1.InsertRequest.timeout_ms": timeout,
            "herd.v1.UpdatePrioritiesRequest.keys": small(2**64 - 1),
        },
    )


FUZZER = _fuzzer()
DTYPES = (np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.int8, np.bool_)


@st.composite
def _array(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.frombuffer(draw(st.binary(min_size=n, max_size=n)), np.uint8)
    if dtype == np.bool_:
        raw = raw & 1
    return raw.view(dtype).reshape(shape)


@st.composite
def _plausible_insert(draw: Any) -> bytes:
    """An InsertRequest that mostly passes the first checks: [T, N, ...] tensors, N items, priorities."""
    from herd.wire.replay_codec import encode_insert_request

    n, t = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    names = draw(st.lists(st.sampled_from(["obs", "reward", "done"]), min_size=1, max_size=3, unique=True))
    items = {}
    for name in names:
        lead = (t, n) if draw(st.integers(0, 5)) else (t, draw(st.integers(0, 4)))
        items[name] = draw(_array((*lead, *draw(st.lists(st.integers(0, 3), max_size=2)))))
    priorities = draw(st.one_of(st.none(), st.lists(floats(), min_size=n, max_size=n), st.lists(floats(), max_size=4)))
    return encode_insert_request(
        table=draw(st.sampled_from(TABLES)), items=items, num_items=draw(st.sampled_from([n, n, n, 0, n + 1])),
        sequence_id=draw(integers(0, 2**64 - 1)), priorities=priorities,
        timeout_ms=draw(st.sampled_from([0, 1, 50])),
    )


@st.composite
def _plausible_publish(draw: Any) -> list[bytes]:
    """A Publish stream of chunks: a manifest with tensor specs, the data cut at random points."""
    from herd.v1 import tensor_pb2
    from herd.wire.codec import ITEMSIZE

    manifest = params_pb2.ParamsManifest(name=draw(st.sampled_from([PARAM_NAME, "other", ""])),
                                         version=draw(integers(-(2**63), 2**63 - 1)))
    total = 0
    for i in range(draw(st.integers(0, 3))):
        dtype = draw(st.one_of(st.sampled_from(sorted(ITEMSIZE)), st.integers(-1, 20)))
        shape = draw(st.lists(st.one_of(st.integers(0, 5), integers(-(2**63), 2**63 - 1)), max_size=3))
        manifest.tensors.add(name=draw(st.sampled_from([f"w{i}", "w0", ""])), dtype=dtype, shape=shape)
        if dtype in ITEMSIZE and all(0 <= d <= 5 for d in shape):
            total += ITEMSIZE[dtype] * int(np.prod(shape, dtype=np.int64))
    manifest.total_bytes = draw(st.sampled_from([total, total, total, total + 1, max(0, total - 1), 2**64 - 1]))
    data = draw(st.binary(min_size=total, max_size=total))
    if any(t.dtype == tensor_pb2.DTYPE_BOOL for t in manifest.tensors):
        data = bytes(b & 1 for b in data)
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=3)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, total])]
    chunks, offset = [], 0
    for i, piece in enumerate(pieces):
        chunk = params_pb2.ParamsChunk(offset=offset if draw(st.integers(0, 7)) else draw(integers(0, 2**64 - 1)),
                                       data=piece)
        if i == 0 or not draw(st.integers(0, 7)):
            chunk.manifest.CopyFrom(manifest)
        chunks.append(chunk.SerializeToString())
        offset += len(piece)
    return chunks


PLAUSIBLE: dict[str, st.SearchStrategy[list[bytes]]] = {
    "herd.v1.ReplayService.Insert": st.lists(_plausible_insert(), min_size=1, max_size=3),
    "herd.v1.ParameterService.Publish": _plausible_publish(),
}


def _call(channel: grpc.Channel, method: Any, requests: list[bytes]) -> tuple[grpc.StatusCode, str]:
    """Sends ``requests`` (one for unary-request methods) as raw bytes; returns the final status."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    deadline = BLOCKING_DEADLINE if method.full_name in BLOCKING else DEADLINE
    shape = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
             (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    callable_ = shape[(method.client_streaming, method.server_streaming)](path)  # bytes in, bytes out
    try:
        if method.client_streaming:
            result = callable_(iter(requests), timeout=deadline)
        else:
            result = callable_(requests[0], timeout=deadline)
        if method.server_streaming:
            for _ in result:
                pass
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def _requests(method: Any) -> st.SearchStrategy[list[bytes]]:
    """Random requests from the descriptor, or (half the time, where one exists) a plausible one."""
    one = FUZZER.request_bytes(method.input_type)
    generic = st.lists(one, min_size=0, max_size=4) if method.client_streaming else one.map(lambda r: [r])
    plausible = PLAUSIBLE.get(method.full_name)
    return generic if plausible is None else st.one_of(generic, plausible)


def _fuzz(servers: Servers, channels: dict[str, grpc.Channel], method: Any, examples: int) -> None:
    service = method.containing_service.full_name
    channel = channels[service]
    allowed = ALLOWED | ({grpc.StatusCode.DEADLINE_EXCEEDED} if method.full_name in BLOCKING else set())

    @settings(max_examples=examples, deadline=None, derandomize=examples <= FAST_EXAMPLES, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests=_requests(method))
    def run(requests: list[bytes]) -> None:
        code, details = _call(channel, method, requests)
        event(code.name)
        if os.environ.get("HERD_FUZZ_VERBOSE"):
            print("fuzz", method.full_name, code.name, details[:100].replace("\n", " "))
        assert code in allowed, f"{method.full_name} answered {code.name}: {details!r}"
        if code != grpc.StatusCode.OK:
            assert details, f"{method.full_name}: {code.name} without a message"
        servers.probes[service](channel)  # still serving

    run()


def _id(method: Any) -> str:
    return f"{method.containing_service.name}.{method.name}"


def test_every_service_has_a_server(servers):
    services = {m.containing_service.full_name for m in METHODS}
    assert services == set(servers.addresses), "a new service needs a server in this test"
    assert len(METHODS) >= 17


@pytest.mark.parametrize("method", METHODS, ids=_id)
def test_fuzz_method(servers, channels, method):
    _fuzz(servers, channels, method, FAST_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS, ids=_id)
def test_fuzz_method_deep(servers, channels, method):
    _fuzz(servers, channels, method, 400)
