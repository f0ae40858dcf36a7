"""The metrics interceptor of ``start_server``: every RPC counted once with the code the client got.

A real server on loopback with a generic service of all four call shapes; each handler ends in a
different way (return, set_code, context.abort, rpc_errors' abort, a plain exception, the client
cancelling), and the client-side code is compared with what ``/metrics`` says.
"""

import threading
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herd.telemetry import metrics as hm
from herd.wire.server import start_server
from herd.wire.status import NotFoundError, rpc_errors

SERVICE = "test.Probe"


class _Probe:
    """Behaviour chosen by the request bytes: b"ok", b"set_code", b"abort", b"not_found", b"boom"."""

    def __init__(self):
        self.stream_started = threading.Event()

    def unary(self, request, context):
        return self._end(request, context, b"done")

    @rpc_errors
    def mapped(self, request, context):  # the servicers' way: exceptions -> codes by herd.wire.status
        if request == b"not_found":
            raise NotFoundError("no such thing")
        return b"done"

    def server_stream(self, request, context):
        yield b"first"
        if request == b"forever":
            self.stream_started.set()
            while context.is_active():
                time.sleep(0.01)
                yield b"more"
            return
        yield self._end(request, context, b"last")

    def client_stream(self, requests, context):
        last = b"ok"
        for last in requests:
            pass
        return self._end(last, context, b"done")

    def bidi(self, requests, context):
        for message in requests:
            if message != b"ok":
                yield self._end(message, context, b"")
                return
            yield b"ack"

    @staticmethod
    def _end(request, context, response):
        if request == b"set_code":
            context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
            context.set_details("set without raising")
            return response
        if request == b"abort":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "aborted")
        if request == b"boom":
            raise RuntimeError("unexpected")
        return response


@pytest.fixture
def server():
    probe = _Probe()
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(probe.unary),
        "Mapped": grpc.unary_unary_rpc_method_handler(probe.mapped),
        "ServerStream": grpc.unary_stream_rpc_method_handler(probe.server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(probe.client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(probe.bidi),
    }
    running = start_server(
        lambda s: s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),)),
        [SERVICE], metrics_port=0,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield running, channel, probe
    channel.close()
    running.stop(0)


def _code(call):
    try:
        call()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def _handled(port):
    """``{(method, type, code): count}`` and ``{(method, type): histogram count}`` from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    handled, timed = {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("grpc_service") != SERVICE:
                continue
            if s.name == hm.GRPC_HANDLED:
                handled[(s.labels["grpc_method"], s.labels["grpc_type"], s.labels["grpc_code"])] = s.value
            elif s.name == hm.GRPC_HANDLING_SECONDS + "_count":
                timed[(s.labels["grpc_method"], s.labels["grpc_type"])] = s.value
    return handled, timed


def _wait_for(port, key, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handled, _ = _handled(port)
        if key in handled:
            return handled
        time.sleep(0.02)
    return _handled(port)[0]


CASES = ["ok", "set_code", "abort", "boom"]


def test_every_call_shape_records_the_code_the_client_sees(server):
    running, channel, _ = server
    unary = channel.unary_unary(f"/{SERVICE}/Unary")
    mapped = channel.unary_unary(f"/{SERVICE}/Mapped")
    server_stream = channel.unary_stream(f"/{SERVICE}/ServerStream")
    client_stream = channel.stream_unary(f"/{SERVICE}/ClientStream")
    bidi = channel.stream_stream(f"/{SERVICE}/Bidi")

    seen = []  # (method, type, client-side code)
    for case in CASES:
        body = case.encode()
        seen.append(("Unary", "unary", _code(lambda: unary(body, timeout=5))))
        seen.append(("ServerStream", "server_stream", _code(lambda: list(server_stream(body, timeout=5)))))
        seen.append(("ClientStream", "client_stream", _code(lambda: client_stream(iter([b"ok", body]), timeout=5))))
        seen.append(("Bidi", "bidi_stream", _code(lambda: list(bidi(iter([b"ok", body]), timeout=5)))))
    seen.append(("Mapped", "unary", _code(lambda: mapped(b"not_found", timeout=5))))
    seen.append(("Mapped", "unary", _code(lambda: mapped(b"ok", timeout=5))))

    # The client saw every way of ending (so the test covers them) ...
    codes = {code for *_, code in seen}
    assert codes == {"OK", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "UNKNOWN", "NOT_FOUND"}, seen
    expected = {}
    for key in seen:
        expected[key] = expected.get(key, 0) + 1
    # ... and the server recorded exactly those, once each (streams finish just after the client returns).
    handled = _wait_for(running.metrics_port, seen[-1])
    deadline = time.monotonic() + 5
    while handled != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        handled, _ = _handled(running.metrics_port)
    assert handled == expected
    _, timed = _handled(running.metrics_port)
    for (method, kind, _code_), n in expected.items():
        assert timed[(method, kind)] >= n


def test_a_stream_the_client_cancels_is_recorded_as_cancelled(server):
    running, channel, probe = server
    call = channel.unary_stream(f"/{SERVICE}/ServerStream")(b"forever", timeout=30)
    assert next(call) == b"first"
    assert probe.stream_started.wait(5)
    call.cancel()
    handled = _wait_for(running.metrics_port, ("ServerStream", "server_stream", "CANCELLED"))
    assert handled == {("ServerStream", "server_stream", "CANCELLED"): 1}


def test_a_call_past_its_deadline_is_recorded_as_deadline_exceeded(server):
    running, channel, probe = server
    call = channel.unary_stream(f"/{SERVICE}/ServerStream")(b"forever", timeout=0.5)
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    handled = _wait_for(running.metrics_port, ("ServerStream", "server_stream", "DEADLINE_EXCEEDED"))
    assert handled == {("ServerStream", "server_stream", "DEADLINE_EXCEEDED"): 1}


def test_health_checks_are_counted_too_and_no_endpoint_when_disabled():
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    registry = hm.new_registry()
    running = start_server(lambda s: None, [], registry=registry, metrics_port=-1)
    try:
        assert running.metrics is None and running.metrics_port is None
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        value = registry.get_sample_value(
            hm.GRPC_HANDLED,
            {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check", "grpc_type": "unary", "grpc_code": "OK"},
        )
        assert value == 1
    finally:
        running.stop(0)


def test_a_taken_metrics_port_is_a_clear_error():
    first = start_server(lambda s: None, [], metrics_port=0)
    try:
        with pytest.raises(OSError, match=f"cannot serve /metrics on 127.0.0.1:{first.metrics_port}"):
            start_server(lambda s: None, [], metrics_port=first.metrics_port)
    finally:
        first.stop(0)


def test_split_method():
    from herd.wire.interceptor import split_method

    assert split_method("/herd.v1.ReplayService/Insert") == ("herd.v1.ReplayService", "Insert")
    assert split_method("odd") == ("unknown", "odd")
