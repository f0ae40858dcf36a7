"""Undecodable request bytes become ``INVALID_ARGUMENT``, not gRPC's ``INTERNAL``.

gRPC Python answers a request its deserializer cannot parse with ``INTERNAL: Exception
deserializing request!`` before any servicer code runs, so a client's garbage would look
like a server bug. :class:`MalformedRequests`, a server interceptor that
:func:`herd.wire.server.start_server` installs on every server, wraps each method's
request deserializer: a parse failure hands the method a marker instead, and the method is
answered ``INVALID_ARGUMENT`` naming the message type. Methods that take raw bytes (no
deserializer, e.g. replay ``Insert``) are left as they are: they validate their own bytes.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Iterator, Optional

import grpc


class MalformedRequestError(ValueError):
    """A request message that does not parse (``INVALID_ARGUMENT``)."""


@dataclasses.dataclass(frozen=True)
class _Malformed:
    error: str


def _lenient(deserializer: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # noqa: BLE001 - DecodeError, or a custom parser's own error
            return _Malformed(f"malformed request to {method}: {e}")

    return parse


def _checked(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, _Malformed):
            raise MalformedRequestError(request.error)
        yield request


def _wrap(behavior: Callable[..., Any], request_streaming: bool, response_streaming: bool) -> Callable[..., Any]:
    def prepare(request: Any, context: grpc.ServicerContext) -> Any:
        if request_streaming:
            return _checked(request)
        if isinstance(request, _Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        return request

    if response_streaming:

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            request = prepare(request, context)
            try:
                result = behavior(request, context)
                if inspect.isgenerator(result) or hasattr(result, "__next__"):
                    yield from result
                else:
                    yield from iter(result)
            except MalformedRequestError as e:  # a servicer without rpc_errors
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

        return stream

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        request = prepare(request, context)
        try:
            return behavior(request, context)
        except MalformedRequestError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    return unary


class MalformedRequests(grpc.ServerInterceptor):
    """Makes every method with a request deserializer answer undecodable bytes with ``INVALID_ARGUMENT``."""

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Optional[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> Optional[grpc.RpcMethodHandler]:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        kind = {(False, False): "unary_unary", (False, True): "unary_stream",
                (True, False): "stream_unary", (True, True): "stream_stream"}[
            (handler.request_streaming, handler.response_streaming)]
        behavior = getattr(handler, kind)
        if behavior is None:
            return handler
        return handler._replace(  # grpc's handlers are namedtuples
            request_deserializer=_lenient(handler.request_deserializer, details.method),
            **{kind: _wrap(behavior, handler.request_streaming, handler.response_streaming)},
        )
