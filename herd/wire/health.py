"""Client side of the standard gRPC health service, for ``herd status`` and probes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from herd.wire.channel import make_channel

if TYPE_CHECKING:
    from herd.options import SecurityOptions


def check_health(
    address: str, service: str = "", timeout: float = 1.0, security: Optional["SecurityOptions"] = None
) -> str:
    """``SERVING``, ``NOT_SERVING`` or ``UNKNOWN`` (unreachable, or no answer in time).

    The health service needs no token, but a TLS server needs ``security``'s TLS settings.
    """
    if not address:
        return "UNKNOWN"
    channel = make_channel(address, retry=False, security=security)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    except grpc.RpcError:
        return "UNKNOWN"
    finally:
        channel.close()


def wait_serving(
    address: str, timeout: float, service: str = "", security: Optional["SecurityOptions"] = None
) -> bool:
    """Polls until the server at ``address`` reports ``SERVING``; False on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check_health(address, service, timeout=min(1.0, max(0.05, deadline - time.monotonic())),
                        security=security) == "SERVING":
            return True
        time.sleep(0.1)
    return False
