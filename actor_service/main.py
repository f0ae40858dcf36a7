"""How an actor process starts: ``herd serve actor`` (what its container runs).

Wires the plain ``Actor`` loop and the agent's policy and adder (from the registry) to the
cluster: items go to the replay service through a pipelined insert stream, weights come
from the parameter server, counters and episodes go to Redis in batches. Services that
are down are retried with backoff by the clients; the actor never crashes on them.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from actor_service.config import ActorServiceConfig
from actor_service.loop import Actor, env_seed
from actor_service.metered import LagMeter, TimedPolicy
from actor_service.servicer import ActorServicer, EpisodeWindow
from herd import devices
from herd.agents import registry as agents
from herd.agents.spec import ActingContext
from herd.control import PauseGate, PolledFlag
from herd.envs.batched import make_batched_env
from herd.envs.registry import EnvInfo
from herd.run_config import RunConfig
from herd.telemetry.metrics import ActorMetrics, new_registry
from herd.types import EpisodeRecord
from herd.v1 import actor_pb2, actor_pb2_grpc
from herd.serving import start_service
from herd.wire.server import install_stop_signals

log = logging.getLogger("herd.actor")



class WriterStopped(Exception):
    """The actor was told to stop while its writer waited for room in the replay table."""


class PipelinedWriter:
    """``TrajectoryWriter`` that keeps up to ``max_in_flight`` unacknowledged inserts.

    The insert is encoded before ``insert`` returns (the actor reuses its buffer),
    then the actor steps on while the replay service stores and acknowledges.
    """

    def __init__(
        self, table_client, max_in_flight: int, should_stop: Optional[Callable[[], bool]] = None
    ) -> None:  # replay_service.client.TableClient
        self.table = table_client
        self.max_in_flight = max_in_flight
        self.should_stop = should_stop
        self._pending: collections.deque = collections.deque()

    def insert(self, items: Mapping[str, np.ndarray], priorities=None, timeout=None) -> Sequence[int]:
        """Queues ``items``; waits while too many are unacknowledged (``WriterStopped`` once told to stop)."""
        self._pending.append(self.table.insert_async(items, priorities))
        while len(self._pending) > self.max_in_flight:
            oldest = self._pending[0]
            while True:  # a full queue whose learner has gone would otherwise hold the actor forever
                try:
                    oldest.result(timeout=0.25)
                    break
                except TimeoutError:
                    if oldest.done():
                        raise  # the insert itself timed out (a rate limiter's DEADLINE_EXCEEDED)
                    if self.should_stop is not None and self.should_stop():
                        raise WriterStopped("stopping while waiting for the replay to take an unroll") from None
            self._pending.popleft()
        return []

    def drain(self, timeout: Optional[float] = None) -> None:
        while self._pending:
            self._pending.popleft().result(timeout=timeout)


def serve(
    config: ActorServiceConfig,
    run: RunConfig,
    info: EnvInfo,
    *,
    stop_event: Optional[threading.Event] = None,
    on_ready: Optional[Callable[[int], None]] = None,
) -> None:
    """Acts until ``stop_event``, SIGTERM, or the run's stop flag."""
    from herd import coord as hcoord
    from actor_service.param_sync import BackgroundFetcher
    from param_server.client import ParamClient
    from replay_service.client import ReplayClient

    torch.set_num_threads(run.torch_threads)
    device = devices.resolve(run.actor_device, "actor_device")  # ConfigError if it is not there
    stop = stop_event or threading.Event()
    install_stop_signals(stop)
    actor_id = config.coord.service_id or f"actor-{config.actor_index}-{socket.gethostname()}-{os.getpid()}"
    coordinator = hcoord.Coordinator.from_options(config.coord) if config.coord.redis_url else None
    reporter = hcoord.Reporter(coordinator, interval=config.report_every_seconds) if coordinator else None

    replay = ReplayClient(hcoord.resolve_address(config.coord, "replay", timeout=60.0), security=config.security)
    params = ParamClient(hcoord.resolve_address(config.coord, "params", timeout=60.0), security=config.security)
    run_stopped = PolledFlag(coordinator.should_stop if coordinator is not None else None)
    spec = agents.get(run.agent_name)
    table = config.table or spec.table(run.agent, run).name
    writer = PipelinedWriter(replay.table(table), config.max_in_flight,
                             should_stop=lambda: stop.is_set() or run_stopped.is_set())
    fetcher = BackgroundFetcher(params, config.param_name)  # fetches overlap with acting
    window = EpisodeWindow()
    registry = new_registry()
    metrics = ActorMetrics(registry, info.task)
    returns: list[float] = []  # of the episodes that ended in the current unroll

    def on_episode(record: EpisodeRecord) -> None:
        window.add(record)
        returns.append(record.episode_return)
        if reporter is not None:
            reporter.episode(record)
            reporter.add(episodes=1)

    seed = env_seed(run.seed, config.actor_index, run.envs_per_actor)
    env = make_batched_env(run.env, run.envs_per_actor, seed, vectorized=run.vectorized_env)
    first_env = config.actor_index * run.envs_per_actor
    context = ActingContext(seed, range(first_env, first_env + run.envs_per_actor), run.total_envs, device)
    metrics.record_device(run.actor_device, str(device), devices.device_name(device))
    actor = Actor(
        env,
        TimedPolicy(spec.make_policy(run.agent, info, context), metrics),
        spec.make_adder(run.agent, info, writer),
        LagMeter(fetcher, metrics),
        actor_id=actor_id,
        task=info.task,
        param_name=config.param_name,
        pull_every=run.agent.pull_every,
        on_episode=on_episode,
    )
    gate = PauseGate()
    servicer = ActorServicer(actor, gate, window)
    running, registration = start_service(
        "actor",
        lambda server: actor_pb2_grpc.add_ActorServiceServicer_to_server(servicer, server),
        [actor_pb2.DESCRIPTOR.services_by_name["ActorService"].full_name],
        config.server, config.coord, config.security, registry=registry, extra={"device": str(device)},
    )
    if on_ready is not None:
        on_ready(running.port)
    log.info("actor serving", extra={"port": running.port, "metrics_port": running.metrics_port, "actor_id": actor_id, "envs": run.envs_per_actor, "device": str(device)})

    try:
        while not stop.is_set():
            gate.wait_while_paused(stop)
            if stop.is_set():
                break
            if run_stopped.is_set():
                break
            try:
                steps = actor.run_unroll()
            except WriterStopped:
                break
            window.update_rate(actor.stats.env_steps)
            metrics.record_unroll(steps, returns, window.mean()[0], actor.policy.version)
            returns.clear()
            if reporter is not None:
                reporter.add(env_steps=steps)
    finally:
        log.info("actor stopping", extra={"env_steps": actor.stats.env_steps})
        try:
            writer.drain(timeout=5.0)
        except Exception as e:  # noqa: BLE001 - replay gone at shutdown: nothing to save
            log.warning("unacknowledged unrolls dropped at shutdown", extra={"error": str(e)})
        if reporter is not None:
            reporter.close()
        running.stop(config.server.grace_seconds)
        if registration is not None:
            registration.close()
        fetcher.close()
        replay.close()
        params.close()
