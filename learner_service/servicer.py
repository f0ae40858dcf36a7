"""The learner's control API (Status, Pause, Resume, ReloadConfig) over gRPC."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import grpc

from herd.control import PauseGate, parse_reload
from herd.v1 import common_pb2, learner_pb2, learner_pb2_grpc
from herd.wire.pausable import PausableServicer
from herd.wire.status import rpc_errors
from learner_service.learner import Learner

class LearnerServicer(PausableServicer, learner_pb2_grpc.LearnerServiceServicer):
    """Reads the running ``Learner``; pauses its loop through ``gate``."""

    def __init__(
        self,
        learner: Learner,
        gate: PauseGate,
        learner_id: str,
        lease_holder: Callable[[], str],
        hot_fields: tuple[str, ...] = (),
    ) -> None:
        self.learner = learner
        self.hot_fields = hot_fields  # agent fields applied between two updates; the rest need a restart
        self.gate = gate
        self.learner_id = learner_id
        self.lease_holder = lease_holder

    @rpc_errors
    def Status(self, request: Any, context: grpc.ServicerContext) -> learner_pb2.LearnerStatus:
        stats = self.learner.stats
        try:
            holder = self.lease_holder()
        except Exception:  # noqa: BLE001 - Redis unreachable: status still answers, the holder unknown
            holder = ""
        losses = {k: float(v) for k, v in stats.last_metrics.items() if math.isfinite(float(v))}
        return learner_pb2.LearnerStatus(
            learner_id=self.learner_id,
            learner_step=stats.steps,
            frames=stats.frames,
            last_losses=losses,
            param_version=max(0, self.learner.published_version),
            paused=self.gate.paused,
            lease_holder=holder,
            holds_lease=holder == self.learner_id,
            policy_lag=float(stats.last_metrics.get("policy_lag", 0.0)),
        )

    @rpc_errors
    def ReloadConfig(self, request: Any, context: grpc.ServicerContext) -> common_pb2.ReloadConfigResponse:
        """Applies ``{"agent": {field: value}}``; non-hot fields are reported as needing a restart."""
        agent_update = parse_reload(request.config_json, '{"agent": {"entropy_cost": 0.005}}')
        from herd import config as hc

        updater = self.learner.updater
        current = updater.config  # type: ignore[attr-defined]
        config_cls = type(current)
        new = hc.build(config_cls, hc.merge(hc.to_dict(current), agent_update), prefix="agent.")
        applied, restart = [], []
        for f in dataclasses.fields(config_cls):
            if getattr(new, f.name) != getattr(current, f.name):
                (applied if f.name in self.hot_fields else restart).append(f"agent.{f.name}")
        hot = {name.split(".", 1)[1]: getattr(new, name.split(".", 1)[1]) for name in applied}
        updater.config = dataclasses.replace(current, **hot)  # type: ignore[attr-defined]
        if "publish_every" in hot:
            self.learner.publish_every = hot["publish_every"]
        return common_pb2.ReloadConfigResponse(applied=applied, requires_restart=restart)
