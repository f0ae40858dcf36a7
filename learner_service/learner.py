"""The learner loop: batches in, gradient steps, priorities and weights out, checkpoints to disk.

Where it sits: batches come from a ``BatchSource`` (a replay table, or the replay client's
prefetching ``SampleStream``), the agent's ``Updater`` does the gradient step on the batch
with its keys and sampling probabilities, new priorities (prioritized replay) go back to
``priority_sink`` (the source itself, or ``learner_service.priorities.PriorityWriter``,
which sends them in batches off the critical path), and every ``publish_every`` steps the
weights go to a ``VariablePublisher`` (the parameter store or its client) as version =
learner step.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Optional

import numpy as np
import torch

from herd import types as ht
from herd.agents.base import UpdateResult, Updater
from herd.fsutil import atomic_write
from herd.interfaces import BatchSource, VariablePublisher

CHECKPOINT_FORMAT = 1


@dataclasses.dataclass
class LearnerStats:
    steps: int = 0
    frames: int = 0
    batch_wait_seconds: float = 0.0
    update_seconds: float = 0.0
    last_metrics: dict = dataclasses.field(default_factory=dict)


class Learner:
    """Runs ``updater`` on batches from ``source`` and publishes its weights."""

    def __init__(
        self,
        updater: Updater,
        source: BatchSource,
        publisher: VariablePublisher,
        batch_size: int,
        *,
        publish_every: int = 1,
        param_name: str = "policy",
        sample_timeout: Optional[float] = None,
        may_publish: Optional[Callable[[], bool]] = None,
        frames_per_item: int = 1,
        priority_sink: Optional[Callable[[np.ndarray, np.ndarray], None]] = None,
    ) -> None:
        self.updater = updater
        self.frames_per_item = frames_per_item  # env steps one sampled item stands for
        self.priority_sink = priority_sink or source.update_priorities
        self.source = source
        self.publisher = publisher
        self.batch_size = batch_size
        self.publish_every = publish_every
        self.param_name = param_name
        self.sample_timeout = sample_timeout
        self.may_publish = may_publish
        self.stats = LearnerStats()
        self.published_version = -1
        self.skipped_publishes = 0

    def publish(self) -> bool:
        """Publishes the current weights; returns False when ``may_publish`` forbids it.

        The version is the learner step, except that it must always increase: a
        learner resumed from an older checkpoint than the parameter server's latest
        version continues from that version + 1 (see ``published_version``).
        """
        if self.may_publish is not None and not self.may_publish():
            self.skipped_publishes += 1
            return False
        version = max(self.stats.steps, self.published_version + 1)
        self.publisher.publish(self.param_name, version, self.updater.weights())
        self.published_version = version
        return True

    def step(self) -> dict[str, float]:
        """Samples one batch, runs one update, sends its priorities, publishes when due; returns the metrics.

        Raises ``RateLimitTimeout`` (a ``TimeoutError``) when no batch comes within ``sample_timeout``.
        """
        t0 = time.perf_counter()
        batch = self.source.sample(self.batch_size, timeout=self.sample_timeout)
        t1 = time.perf_counter()
        result = self.updater.update(batch)
        if not isinstance(result, UpdateResult):
            raise TypeError(f"{type(self.updater).__name__}.update must return an UpdateResult")
        t2 = time.perf_counter()
        metrics = result.metrics
        if result.priorities is not None:
            self.priority_sink(batch.keys, np.asarray(result.priorities, np.float64))
        self.stats.steps += 1
        self.stats.frames += self.frames_per_item * self.batch_size
        self.stats.batch_wait_seconds += t1 - t0
        self.stats.update_seconds += t2 - t1
        if ht.PARAM_VERSION in batch.data:
            # Policy lag: how many versions behind the learner the acting weights were.
            lag = self.published_version - np.asarray(batch.data[ht.PARAM_VERSION], np.float64)
            metrics["policy_lag"] = float(lag.mean())
        metrics["batch_wait_seconds"] = t1 - t0
        self.stats.last_metrics = metrics
        if self.stats.steps % self.publish_every == 0:
            self.publish()
        return metrics

    # -- checkpoints --------------------------------------------------------------------

    def checkpoint_state(self, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "updater": self.updater.state_dict(),
            "steps": self.stats.steps,
            "frames": self.stats.frames,
            "published_version": self.published_version,
            "extra": dict(extra or {}),
        }

    def save_checkpoint(self, directory: str, extra: Optional[dict[str, Any]] = None) -> str:
        """Writes ``ckpt-<step>.pt`` atomically (temp file + rename); returns its path."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"ckpt-{self.stats.steps:09d}.pt")
        with atomic_write(path, prefix=".ckpt-") as f:
            torch.save(self.checkpoint_state(extra), f)
        return path

    def restore(self, path: str) -> dict[str, Any]:
        """Loads a checkpoint (tensors and plain containers only: ``weights_only=True``) on any device.

        Tensors are read onto the CPU whatever device wrote them, and the updater's
        ``load_state_dict`` copies each to where its network lives (optimizer state follows its
        parameters): a checkpoint from a GPU learner resumes on a CPU one and the reverse.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint {path}: format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        self.updater.load_state_dict(state["updater"])
        self.stats.steps = int(state["steps"])
        self.stats.frames = int(state["frames"])
        self.published_version = max(self.published_version, int(state.get("published_version", -1)))
        return dict(state.get("extra", {}))


def prune_checkpoints(directory: str, keep: int) -> None:
    """Deletes all but the newest ``keep`` checkpoints in ``directory``."""
    names = sorted(n for n in os.listdir(directory) if n.startswith("ckpt-") and n.endswith(".pt"))
    for name in names[:-keep]:
        os.unlink(os.path.join(directory, name))


def latest_checkpoint(directory: str) -> Optional[str]:
    """The newest ``ckpt-*.pt`` in ``directory``, or ``None``."""
    if not os.path.isdir(directory):
        return None
    names = sorted(n for n in os.listdir(directory) if n.startswith("ckpt-") and n.endswith(".pt"))
    return os.path.join(directory, names[-1]) if names else None
