"""herd.wire.channel: limits, keepalive and retry settings, and a >4 MiB message over loopback."""

from __future__ import annotations

import asyncio
import json
from concurrent import futures

import grpc
import pytest

from herd.wire import channel


def test_defaults():
    opts = dict(channel.channel_options())
    assert channel.DEFAULT_MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    assert opts["grpc.max_send_message_length"] == opts["grpc.max_receive_message_length"] == 64 * 1024 * 1024
    assert opts["grpc.keepalive_time_ms"] > 0
    policy = json.loads(opts["grpc.service_config"])["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    server = dict(channel.server_options())
    assert server["grpc.max_receive_message_length"] == 64 * 1024 * 1024
    # The server must accept the client's keepalive pings.
    assert server["grpc.http2.min_ping_interval_without_data_ms"] <= opts["grpc.keepalive_time_ms"]


def test_overrides_replace_defaults():
    opts = channel.channel_options(1024, retry=False, options=[("grpc.keepalive_time_ms", 5), ("grpc.primary_user_agent", "t")])
    keys = [k for k, _ in opts]
    assert len(keys) == len(set(keys))
    d = dict(opts)
    assert d["grpc.max_send_message_length"] == 1024 and d["grpc.keepalive_time_ms"] == 5
    assert "grpc.service_config" not in d and d["grpc.enable_retries"] == 0


def _echo_server(max_bytes: int) -> tuple[grpc.Server, int]:
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=channel.server_options(max_bytes))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_messages_above_grpc_default_limit_pass():
    server, port = _echo_server(channel.DEFAULT_MAX_MESSAGE_BYTES)
    try:
        payload = b"x" * (8 * 1024 * 1024)  # twice gRPC's 4 MiB default
        with channel.make_channel(f"127.0.0.1:{port}") as ch:
            assert ch.unary_unary("/test.Echo/Echo")(payload, timeout=30) == payload
        with channel.make_channel(f"127.0.0.1:{port}", max_message_bytes=1024 * 1024) as ch:
            with pytest.raises(grpc.RpcError) as err:
                ch.unary_unary("/test.Echo/Echo")(payload, timeout=30)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop(None)


def test_aio_channel():
    server, port = _echo_server(channel.DEFAULT_MAX_MESSAGE_BYTES)

    async def call() -> bytes:
        async with channel.make_aio_channel(f"127.0.0.1:{port}") as ch:
            return await ch.unary_unary("/test.Echo/Echo")(b"ping" * 2_000_000, timeout=30)

    try:
        assert asyncio.run(call()) == b"ping" * 2_000_000
    finally:
        server.stop(None)
