"""TLS credentials and the shared bearer token, for every Herd server and channel.

Where it sits: :func:`herd.wire.server.start_server` calls :func:`server_security` and
:func:`herd.wire.channel.make_channel` calls :func:`channel_credentials` /
:class:`BearerToken`, both from one ``herd.options.SecurityOptions``; nothing else
builds credentials.

- TLS: a server with ``tls_cert`` / ``tls_key`` accepts TLS only; with ``tls_client_auth``
  the handshake also fails unless the client presents a certificate signed by ``tls_ca``
  (the caller sees ``UNAVAILABLE``: no call ever reaches the server).
- Token: callers send ``authorization: Bearer <token>`` on every call (a client interceptor
  adds it); the server compares it in constant time and answers ``UNAUTHENTICATED`` otherwise.
  The standard health service stays open so probes (kubelet, ``herd status``, load balancers)
  need no secret; server reflection does **not** — it describes the whole API, so it needs the
  token like any other call (``grpcurl -H 'authorization: Bearer ...'``).
"""

from __future__ import annotations

import collections
import hmac
import logging
from typing import Any, Callable, Optional, Sequence

import grpc

from herd.options import SecurityOptions

log = logging.getLogger(__name__)

AUTH_METADATA_KEY = "authorization"
OPEN_METHOD_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/",)
"""Methods served without the token: the standard health service (probes)."""


# ------------------------------------------------------------------------------ server


def server_credentials(security: SecurityOptions) -> Optional[grpc.ServerCredentials]:
    """TLS (mutual with ``tls_client_auth``) server credentials, or None without ``tls_cert``."""
    if not security.server_tls:
        return None
    client_auth = security.tls_client_auth
    return grpc.ssl_server_credentials(
        [(security.read("tls_key"), security.read("tls_cert"))],
        root_certificates=security.read("tls_ca") if client_auth else None,
        require_client_auth=client_auth,
    )


def server_security(
    security: SecurityOptions, credentials: Optional[grpc.ServerCredentials] = None
) -> tuple[Optional[grpc.ServerCredentials], list[grpc.ServerInterceptor]]:
    """``(credentials, interceptors)`` for ``start_server``: TLS and the token check, as configured."""
    creds = credentials if credentials is not None else server_credentials(security)
    token = security.bearer_token()
    interceptors: list[grpc.ServerInterceptor] = [TokenAuthInterceptor(token)] if token else []
    if token and creds is None:
        log.warning("token authentication without TLS: tokens cross the network in clear text")
    return creds, interceptors


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Refuses every call without ``authorization: Bearer <token>`` with ``UNAUTHENTICATED``,
    except methods under ``open_prefixes`` (the health service)."""

    def __init__(self, token: str, open_prefixes: Sequence[str] = OPEN_METHOD_PREFIXES) -> None:
        if not token:
            raise ValueError("token: must be non-empty")
        self._expected = f"Bearer {token}".encode()
        self._open = tuple(open_prefixes)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        if details.method.startswith(self._open):
            return continuation(details)
        problem = self._problem(details.invocation_metadata or ())
        if problem is None:
            return continuation(details)
        log.warning("unauthenticated call refused", extra={"method": details.method, "reason": problem})
        return _deny(continuation(details), problem)

    def _problem(self, metadata: Sequence[tuple[str, Any]]) -> Optional[str]:
        values = [v for k, v in metadata if k == AUTH_METADATA_KEY]
        if not values:
            return "missing 'authorization: Bearer <token>' metadata"
        value = values[0]
        got = value if isinstance(value, bytes) else str(value).encode()
        # Constant time: the comparison must not tell how many leading bytes were right.
        if len(values) == 1 and hmac.compare_digest(got, self._expected):
            return None
        return "invalid bearer token"


def _deny(handler: Optional[grpc.RpcMethodHandler], message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that aborts with ``UNAUTHENTICATED`` (request unread)."""

    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    request_streaming = bool(handler and handler.request_streaming)
    response_streaming = bool(handler and handler.response_streaming)
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    # Also for unknown methods: an unauthenticated caller learns nothing about which exist.
    return grpc.unary_unary_rpc_method_handler(abort)


# ------------------------------------------------------------------------------ client


def channel_credentials(security: SecurityOptions) -> Optional[grpc.ChannelCredentials]:
    """TLS channel credentials (verifying servers with ``tls_ca``, presenting ``tls_cert``), or None."""
    if not security.client_tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=security.read("tls_ca") if security.tls_ca else None,
        private_key=security.read("tls_key") if security.tls_cert else None,
        certificate_chain=security.read("tls_cert") if security.tls_cert else None,
    )


def channel_options(security: SecurityOptions) -> list[tuple[str, Any]]:
    """Channel arguments TLS needs: the expected server name, when overridden."""
    if security.client_tls and security.tls_server_name:
        return [("grpc.ssl_target_name_override", security.tls_server_name)]
    return []


class _Details(
    collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


def _with_token(details: grpc.ClientCallDetails, header: tuple[str, str]) -> _Details:
    metadata = [m for m in (details.metadata or ()) if m[0] != AUTH_METADATA_KEY]
    return _Details(details.method, details.timeout, [*metadata, header], details.credentials,
                    getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Client interceptor adding ``authorization: Bearer <token>`` to every call of a channel.

    An interceptor rather than call credentials so the token works over plain channels too
    (e.g. behind a mesh that terminates TLS); the response objects are gRPC's own.
    """

    def __init__(self, token: str) -> None:
        self._header = (AUTH_METADATA_KEY, f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_token(details, self._header), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_token(details, self._header), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(_with_token(details, self._header), request_iterator)

    def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(_with_token(details, self._header), request_iterator)


def aio_token_interceptors(token: str) -> list[Any]:
    """The ``grpc.aio`` counterpart of :class:`BearerToken` (one interceptor per call shape)."""
    header = (AUTH_METADATA_KEY, f"Bearer {token}")

    def details(d: Any) -> Any:
        metadata = [m for m in (d.metadata or ()) if m[0] != AUTH_METADATA_KEY]
        return grpc.aio.ClientCallDetails(d.method, d.timeout, grpc.aio.Metadata(*metadata, header),
                                          d.credentials, d.wait_for_ready)

    class UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation: Any, d: Any, request: Any) -> Any:
            return await continuation(details(d), request)

    class UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
        async def intercept_unary_stream(self, continuation: Any, d: Any, request: Any) -> Any:
            return await continuation(details(d), request)

    class StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
        async def intercept_stream_unary(self, continuation: Any, d: Any, request_iterator: Any) -> Any:
            return await continuation(details(d), request_iterator)

    class StreamStream(grpc.aio.StreamStreamClientInterceptor):
        async def intercept_stream_stream(self, continuation: Any, d: Any, request_iterator: Any) -> Any:
            return await continuation(details(d), request_iterator)

    return [UnaryUnary(), UnaryStream(), StreamUnary(), StreamStream()]
