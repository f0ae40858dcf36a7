"""How a learner process starts: ``herd serve learner`` (what its container runs).

Wires the plain ``Learner`` and the agent's updater (from the registry) to the cluster:
batches from the replay service's prefetching ``SampleStream``, priorities back through a
``PriorityWriter``, weights to the parameter server, its lease, counters and checkpoints.
The updater runs on the run's ``learner_device`` (``herd.devices``); on a CUDA device the
prefetch thread also pins each batch. Runs until SIGTERM or the run's stop flag, then checkpoints.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, Optional

import torch

from herd import devices
from herd.agents import registry as agents
from herd.agents.torch_util import pin_batch
from herd.control import PauseGate, PolledFlag
from herd.envs.registry import EnvInfo
from herd.run_config import RunConfig
from herd.telemetry.metrics import LearnerMetrics, new_registry
from herd.v1 import learner_pb2
from herd.serving import start_service
from herd.wire.server import install_stop_signals
from learner_service.config import LearnerServiceConfig
from learner_service.learner import Learner, latest_checkpoint, prune_checkpoints
from learner_service.priorities import PriorityWriter
from learner_service.publisher import AsyncPublisher

log = logging.getLogger("herd.learner")


class _MetricsWindow:
    """Means of every update metric over the last ``every_seconds``, for a periodic log line."""

    def __init__(self, every_seconds: float) -> None:
        self.every_seconds = every_seconds
        self._sums: dict[str, float] = {}
        self._count = 0
        self._since = time.monotonic()

    def add(self, metrics: dict[str, float]) -> Optional[dict[str, float]]:
        """Adds one update's metrics; returns the window's means when it is due, else None."""
        if self.every_seconds <= 0:
            return None
        self._count += 1
        for key, value in metrics.items():  # whatever the agent's updater reports
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
        now = time.monotonic()
        if now - self._since < self.every_seconds:
            return None
        summary = {f"mean_{k}" if not k.startswith("mean_") else k: round(v / self._count, 4)
                   for k, v in self._sums.items()}
        summary["updates_per_second"] = round(self._count / (now - self._since), 1)
        self._sums, self._count, self._since = {}, 0, now
        return summary


def serve(
    config: LearnerServiceConfig,
    run: RunConfig,
    info: EnvInfo,
    *,
    stop_event: Optional[threading.Event] = None,
    on_ready: Optional[Callable[[int], None]] = None,
) -> None:
    """Runs the learner until ``stop_event``, SIGTERM, or the run's stop flag."""
    from herd import coord as hcoord
    from param_server.client import ParamClient
    from replay_service.client import ReplayClient, SampleStream

    torch.set_num_threads(run.torch_threads)
    device = devices.resolve(run.learner_device, "learner_device")  # ConfigError if it is not there
    stop = stop_event or threading.Event()
    install_stop_signals(stop)
    learner_id = config.coord.service_id or f"learner-{socket.gethostname()}-{os.getpid()}"
    coordinator = hcoord.Coordinator.from_options(config.coord) if config.coord.redis_url else None

    replay_address = hcoord.resolve_address(config.coord, "replay", timeout=60.0)
    params_address = hcoord.resolve_address(config.coord, "params", timeout=60.0)
    replay = ReplayClient(replay_address, security=config.security)
    params = ParamClient(params_address, security=config.security)
    spec = agents.get(run.agent_name)
    table = replay.table(config.table or spec.table(run.agent, run).name)
    # One Sample call per batch (not one endless call) on purpose: an open server stream would keep
    # sampling into gRPC's transport buffers, far ahead of the learner, defeating the queue's bound
    # on policy lag and the sample-to-insert ratio (replay_service.sample_stream).
    # On a GPU the prefetch thread also copies each batch into pinned memory, so the learner's
    # loop adds only the host-to-device copy (herd.agents.torch_util).
    source = SampleStream(table, run.agent.batch_size, prefetch=config.prefetch, batches_per_call=1,
                          stage=pin_batch if device.type == "cuda" else None)
    priorities = PriorityWriter(table.update_priorities)  # off the update's critical path

    lease = None
    if coordinator is not None:
        lease = hcoord.LeaseKeeper(
            coordinator, "learner", learner_id, ttl=config.lease_ttl_seconds,
            renew_every=config.lease_ttl_seconds / 5,
        )
        log.info("waiting for the learner lease", extra={"learner_id": learner_id})
        while not lease.wait_acquired(timeout=1.0):
            if stop.is_set():
                lease.close()
                return
    gate = PauseGate()
    updater = spec.make_updater(run.agent, info, run, device)
    device_name = devices.device_name(device)
    log.info("learner device", extra={
        "device": str(device), "device_name": device_name, "learner_device": run.learner_device,
        "precision": getattr(run.agent, "precision", "float32"),  # an agent field: not every agent has it
    })
    publisher = AsyncPublisher(params)  # an update never waits on a publish round trip
    learner = Learner(
        updater,
        source,
        publisher,
        run.agent.batch_size,
        publish_every=run.agent.publish_every,
        param_name=config.param_name,
        sample_timeout=1.0,
        may_publish=(lambda: lease.held) if lease is not None else None,
        frames_per_item=spec.frames_per_item(run.agent),
        priority_sink=priorities,
    )
    ckpt_dir = config.checkpoint_dir
    restored_counters: dict[str, int] = {}
    if ckpt_dir:
        path = latest_checkpoint(ckpt_dir)
        if path:
            extra = learner.restore(path)
            restored_counters = {k: int(v) for k, v in dict(extra.get("counters", {})).items()}
            log.info("resumed", extra={"checkpoint": path, "learner_step": learner.stats.steps})
    # Versions must keep increasing across learner restarts: start above what the server has.
    latest = params.fetch(config.param_name)
    if latest is not None:
        learner.published_version = max(learner.published_version, latest.version)
    learner.publish()
    publisher.flush(timeout=30.0)  # actors wait for this first version

    reporter = hcoord.Reporter(coordinator) if coordinator is not None else None
    if coordinator is not None:
        # Redis may have lost its data: re-assert what this learner knows.
        coordinator.set_counters_max(**{**restored_counters, "learner_steps": learner.stats.steps})

    from learner_service.servicer import LearnerServicer
    from herd.v1 import learner_pb2_grpc

    servicer = LearnerServicer(
        learner, gate, learner_id, lambda: (coordinator.lease_holder("learner") or "") if coordinator else learner_id,
        hot_fields=spec.hot_fields,
    )
    registry = new_registry()
    metrics = LearnerMetrics(registry)
    metrics.record_device(run.learner_device, str(device), device_name)
    running, registration = start_service(
        "learner",
        lambda server: learner_pb2_grpc.add_LearnerServiceServicer_to_server(servicer, server),
        [learner_pb2.DESCRIPTOR.services_by_name["LearnerService"].full_name],
        config.server, config.coord, config.security, registry=registry, extra={"device": str(device)},
    )
    if on_ready is not None:
        on_ready(running.port)
    log.info("learner serving", extra={"port": running.port, "metrics_port": running.metrics_port, "replay": replay_address, "params": params_address, "device": str(device)})

    def save() -> None:
        if ckpt_dir:
            counters = {}
            if coordinator is not None:
                try:
                    counters = coordinator.counters()  # the run's counters, to re-assert on resume
                except Exception:  # noqa: BLE001 - Redis down: checkpoint without them
                    pass
            path = learner.save_checkpoint(ckpt_dir, {"counters": counters})
            prune_checkpoints(ckpt_dir, config.keep_checkpoints)
            log.info("checkpoint", extra={"path": path, "learner_step": learner.stats.steps})

    last_ckpt = learner.stats.steps
    window = _MetricsWindow(every_seconds=config.log_every_seconds)
    run_stopped = PolledFlag(coordinator.should_stop if coordinator is not None else None)
    try:
        while not stop.is_set():
            gate.wait_while_paused(stop)
            if stop.is_set():
                break
            if run_stopped.is_set():
                break
            update_seconds = learner.stats.update_seconds
            try:
                step_metrics = learner.step()
            except TimeoutError:
                continue  # no data yet (actors starting, replay restarting)
            frames = learner.frames_per_item * learner.batch_size
            metrics.record_step(step_metrics, frames, learner.published_version,
                                learner.stats.update_seconds - update_seconds)
            summary = window.add(step_metrics)
            if summary is not None:
                log.info("learner progress", extra={"learner_step": learner.stats.steps, **summary})
            if reporter is not None:
                reporter.add(learner_steps=1, learner_frames=frames)
            if learner.stats.steps - last_ckpt >= config.checkpoint_every:
                save()
                last_ckpt = learner.stats.steps
    finally:
        log.info("learner stopping", extra={"learner_step": learner.stats.steps})
        source.close()
        priorities.close()
        publisher.close(timeout=5.0)  # the last weights reach the server before the checkpoint names them
        save()
        if reporter is not None:
            reporter.close()
        running.stop(config.server.grace_seconds)
        if registration is not None:
            registration.close()
        if lease is not None:
            lease.close()
        replay.close()
        params.close()
