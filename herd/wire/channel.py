"""The one place gRPC channels and server options are configured (STYLE.md 6).

Where it sits: every client (``*/client.py``) opens its channel with :func:`make_channel` (or
:func:`make_aio_channel`), and every server is built with :func:`server_options`, so both
ends agree on message-size limits and keepalive.

- Message size: :data:`DEFAULT_MAX_MESSAGE_BYTES` = 64 MiB each way (gRPC's default receive
  limit is 4 MiB). A sampled batch must fit in one message; parameters are streamed in chunks
  and never need more than one chunk per message.
- Keepalive: clients ping an idle connection every 30 s and drop it after 10 s without an
  answer, so a dead server is noticed on long Sample / Subscribe streams; servers accept those
  pings (their default would answer with GOAWAY ``too_many_pings``) and ping clients every 60 s.
- Retries: a unary call that fails with ``UNAVAILABLE`` before any response arrived (server
  restarting, connection refused) is retried up to 4 attempts with exponential backoff.
  Deadlines are still set per call by the caller: every RPC has one. Streaming methods get
  no built-in retries: their clients reconnect themselves, and with grpcio 1.85 a retried
  server-streaming call whose server was killed mid-call can hang past its deadline (a
  learner's ``Sample`` did, forever, after ``kill -9`` of the replay).
- Security: with a ``herd.options.SecurityOptions`` the channel uses TLS (mutual with a client
  certificate) and sends the shared token on every call (:mod:`herd.wire.security`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional, Sequence

import grpc

if TYPE_CHECKING:
    from herd.options import SecurityOptions

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message sent or received: 64 MiB (above gRPC's 4 MiB default, below its 2 GiB cap)."""

ChannelOptions = list[tuple[str, Any]]

def _streaming_methods() -> list[dict[str, str]]:
    """Every streaming method of the herd.v1 services, as service-config names."""
    from herd.v1 import actor_pb2, learner_pb2, params_pb2, replay_pb2

    return [
        {"service": service.full_name, "method": method.name}
        for module in (actor_pb2, learner_pb2, params_pb2, replay_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if method.client_streaming or method.server_streaming
    ]


RETRY_SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [{}],  # every method of every service ...
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        },
        {"name": _streaming_methods()},  # ... but the streaming ones (an exact name wins): no retries
    ]
}


def channel_options(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    keepalive_time_ms: int = 30_000,
    keepalive_timeout_ms: int = 10_000,
    retry: bool = True,
    options: Sequence[tuple[str, Any]] = (),
) -> ChannelOptions:
    """The client channel arguments; ``options`` are appended and win over the defaults."""
    base: ChannelOptions = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 1 if retry else 0),
    ]
    if retry:
        base.append(("grpc.service_config", json.dumps(RETRY_SERVICE_CONFIG)))
    overridden = {key for key, _ in options}
    return [(k, v) for k, v in base if k not in overridden] + list(options)


def make_channel(
    address: str,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keepalive_time_ms: int = 30_000,
    keepalive_timeout_ms: int = 10_000,
    retry: bool = True,
    options: Sequence[tuple[str, Any]] = (),
    credentials: grpc.ChannelCredentials | None = None,
    security: Optional["SecurityOptions"] = None,
) -> grpc.Channel:
    """A channel to ``address`` (``host:port``): insecure, or secured by ``credentials`` / ``security``."""
    credentials, options, token = _secured(credentials, options, security)
    opts = channel_options(
        max_message_bytes,
        keepalive_time_ms=keepalive_time_ms,
        keepalive_timeout_ms=keepalive_timeout_ms,
        retry=retry,
        options=options,
    )
    if credentials is not None:
        channel = grpc.secure_channel(address, credentials, options=opts)
    else:
        channel = grpc.insecure_channel(address, options=opts)
    if token:
        from herd.wire.security import BearerToken

        channel = grpc.intercept_channel(channel, BearerToken(token))
    return channel


def _secured(
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, Any]],
    security: Optional["SecurityOptions"],
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]], str]:
    """``(credentials, options, token)`` once ``security`` (if any) is applied."""
    if security is None:
        return credentials, list(options), ""
    from herd.wire import security as sec

    if credentials is None:
        credentials = sec.channel_credentials(security)
    return credentials, [*sec.channel_options(security), *options], security.bearer_token()


def make_aio_channel(
    address: str,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keepalive_time_ms: int = 30_000,
    keepalive_timeout_ms: int = 10_000,
    retry: bool = True,
    options: Sequence[tuple[str, Any]] = (),
    credentials: grpc.ChannelCredentials | None = None,
    security: Optional["SecurityOptions"] = None,
) -> grpc.aio.Channel:
    """Like :func:`make_channel`, for ``grpc.aio`` clients (call inside a running event loop)."""
    credentials, options, token = _secured(credentials, options, security)
    opts = channel_options(
        max_message_bytes,
        keepalive_time_ms=keepalive_time_ms,
        keepalive_timeout_ms=keepalive_timeout_ms,
        retry=retry,
        options=options,
    )
    interceptors = None
    if token:
        from herd.wire.security import aio_token_interceptors

        interceptors = aio_token_interceptors(token)
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)


def server_options(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    options: Sequence[tuple[str, Any]] = (),
) -> ChannelOptions:
    """Arguments for ``grpc.server(..., options=server_options())`` / ``grpc.aio.server``.

    Matches :func:`channel_options`: same size limits, and accepts client keepalive pings
    down to every 10 s even without active calls.
    """
    base: ChannelOptions = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    overridden = {key for key, _ in options}
    return [(k, v) for k, v in base if k not in overridden] + list(options)
