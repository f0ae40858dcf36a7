"""Client side of the standard gRPC health service, for ``herd status`` and probes."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from herd.wire.channel import make_channel


def check_health(address: str, service: str = "", timeout: float = 1.0) -> str:
    """``SERVING``, ``NOT_SERVING`` or ``UNKNOWN`` (unreachable, or no answer in time)."""
    if not address:
        return "UNKNOWN"
    channel = make_channel(address, retry=False)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    except grpc.RpcError:
        return "UNKNOWN"
    finally:
        channel.close()


def wait_serving(address: str, timeout: float, service: str = "") -> bool:
    """Polls until the server at ``address`` reports ``SERVING``; False on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check_health(address, service, timeout=min(1.0, max(0.05, deadline - time.monotonic()))) == "SERVING":
            return True
        time.sleep(0.1)
    return False
