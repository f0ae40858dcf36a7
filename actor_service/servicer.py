"""The actor's control API (Status, Pause, Resume, ReloadConfig) over gRPC."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import grpc

from actor_service.loop import Actor
from herd.control import PauseGate, parse_reload
from herd.types import EpisodeRecord
from herd.v1 import actor_pb2, actor_pb2_grpc, common_pb2
from herd.wire.pausable import PausableServicer
from herd.wire.status import rpc_errors


class EpisodeWindow:
    """The last ``size`` episode returns of one actor, and its recent step rate."""

    def __init__(self, size: int = 100) -> None:
        self._returns: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._rate_mark = (time.monotonic(), 0)
        self.rate = 0.0

    def add(self, record: EpisodeRecord) -> None:
        with self._lock:
            self._returns.append(record.episode_return)

    def mean(self) -> tuple[float, int]:
        with self._lock:
            n = len(self._returns)
            return (sum(self._returns) / n if n else float("nan")), n

    def update_rate(self, env_steps: int) -> None:
        now = time.monotonic()
        t0, s0 = self._rate_mark
        if now - t0 >= 1.0:
            self.rate = (env_steps - s0) / (now - t0)
            self._rate_mark = (now, env_steps)


class ActorServicer(PausableServicer, actor_pb2_grpc.ActorServiceServicer):
    """Reads the running ``Actor``; pauses its loop through ``gate``."""

    def __init__(self, actor: Actor, gate: PauseGate, window: EpisodeWindow) -> None:
        self.actor = actor
        self.gate = gate
        self.window = window

    @rpc_errors
    def Status(self, request: Any, context: grpc.ServicerContext) -> actor_pb2.ActorStatus:
        mean, n = self.window.mean()
        stats = self.actor.stats
        return actor_pb2.ActorStatus(
            actor_id=self.actor.actor_id,
            env_steps=stats.env_steps,
            episodes=stats.episodes,
            param_version=max(0, self.actor.policy.version),
            mean_return=mean,
            num_episodes_in_mean=n,
            num_envs=self.actor.env.num_envs,
            paused=self.gate.paused,
            env_steps_per_second=self.window.rate,
        )

    @rpc_errors
    def ReloadConfig(self, request: Any, context: grpc.ServicerContext) -> common_pb2.ReloadConfigResponse:
        """Applies ``{"agent": {"pull_every": k}}``; other agent fields need a restart."""
        agent_update = parse_reload(request.config_json, '{"agent": {"pull_every": 2}}')
        applied, restart = [], []
        for key, value in agent_update.items():
            if key == "pull_every":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"agent.pull_every must be an integer >= 1, got {value!r}")
                self.actor.pull_every = value
                applied.append("agent.pull_every")
            else:
                restart.append(f"agent.{key}")
        return common_pb2.ReloadConfigResponse(applied=applied, requires_restart=restart)
