"""``Pause`` / ``Resume`` of the actor and learner control services (common.proto), shared."""

from __future__ import annotations

from typing import Any

import grpc

from herd.control import PauseGate
from herd.v1 import common_pb2
from herd.wire.status import rpc_errors


class PausableServicer:
    """Mixin for a servicer with a ``gate: PauseGate`` that its work loop waits on."""

    gate: PauseGate

    @rpc_errors
    def Pause(self, request: Any, context: grpc.ServicerContext) -> common_pb2.PauseResponse:
        return common_pb2.PauseResponse(was_paused=self.gate.pause(request.reason))

    @rpc_errors
    def Resume(self, request: Any, context: grpc.ServicerContext) -> common_pb2.ResumeResponse:
        return common_pb2.ResumeResponse(was_paused=self.gate.resume())
