"""The one server interceptor every Herd service runs: request counts by final code, and latency.

Where it sits: :func:`herd.wire.server.start_server` puts it first on every server, so each
RPC of every service (including health and reflection) lands in
:class:`herd.telemetry.metrics.GrpcServerMetrics` once, when it ends. It wraps the method's
behaviour rather than observing the wire, so the code it records is what the client gets:

* the handler returned (or its stream ended): the code set with ``context.set_code``, else ``OK``;
* the handler raised: the code ``context.abort`` set (``herd.wire.status.rpc_errors`` aborts with
  the mapped code), else ``UNKNOWN``, which is what gRPC sends for an unexpected exception;
* the client went away first: ``CANCELLED`` (``DEADLINE_EXCEEDED`` if its deadline passed).

Per call it costs two clock reads and one cached counter + histogram update; per streamed
message nothing but a ``yield from``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Optional

import grpc

from herd.telemetry.metrics import GrpcServerMetrics

_KINDS = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}


def split_method(full: str) -> tuple[str, str]:
    """``"/herd.v1.ReplayService/Insert"`` -> ``("herd.v1.ReplayService", "Insert")``."""
    service, _, method = full.lstrip("/").rpartition("/")
    return service or "unknown", method or full


def final_code(context: grpc.ServicerContext, raised: bool, closed: bool = False) -> str:
    """The status code a call ends with, as seen from inside its handler once it finished."""
    code: Optional[grpc.StatusCode] = context.code()  # set by set_code / abort
    if code is not None:
        return code.name
    if raised:
        return grpc.StatusCode.UNKNOWN.name
    if closed or not context.is_active():
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return (grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED).name
    return grpc.StatusCode.OK.name


class MetricsInterceptor(grpc.ServerInterceptor):
    """Records every RPC's final code and duration into ``metrics``."""

    def __init__(self, metrics: GrpcServerMetrics) -> None:
        self.metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Optional[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> Optional[grpc.RpcMethodHandler]:
        handler = continuation(details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED; no label per garbage name
            return None
        service, method = split_method(details.method)
        kind = _KINDS[(bool(handler.request_streaming), bool(handler.response_streaming))]
        record = self.metrics.record
        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                t0 = time.perf_counter()
                raised = closed = False
                try:
                    yield from behavior(request, context)
                except GeneratorExit:  # gRPC dropped the stream: the call ended under it
                    closed = True
                    raise
                except BaseException:
                    raised = True
                    raise
                finally:
                    record(service, method, kind, final_code(context, raised, closed), time.perf_counter() - t0)

            wrapped: Callable[..., Any] = streaming
        else:
            behavior = handler.unary_unary or handler.stream_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                t0 = time.perf_counter()
                raised = False
                try:
                    return behavior(request, context)
                except BaseException:
                    raised = True
                    raise
                finally:
                    record(service, method, kind, final_code(context, raised), time.perf_counter() - t0)

            wrapped = unary
        return _with_behavior(handler, wrapped)


def _with_behavior(handler: grpc.RpcMethodHandler, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """``handler`` with its one behaviour replaced, serializers kept."""
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behavior, des, ser)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behavior, des, ser)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behavior, des, ser)
    return grpc.unary_unary_rpc_method_handler(behavior, des, ser)
