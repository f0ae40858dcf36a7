"""Everything a run leaves in its run directory.

``config.yaml`` (the resolved config), ``episodes.csv`` (one row per finished
training episode), ``eval.csv`` (one row per evaluation episode, ``herd.evaluation``),
``tb/`` (TensorBoard event log), ``checkpoints/``, and at the end
``learning_curve.png`` and ``summary.json``. ``herd train`` and ``herd up`` write
the same files through this class.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import time
from typing import Any, Mapping, Optional

import yaml

from herd.types import EpisodeRecord

EPISODE_COLUMNS = ("env_steps", "episode_return", "episode_length", "task")


def _episode_csv(path: str) -> tuple[Any, Any]:
    """An episodes file opened for appending (a resumed run goes on), with its header when new."""
    fresh = not os.path.exists(path) or os.path.getsize(path) == 0
    f = open(path, "a", newline="")
    writer = csv.writer(f)
    if fresh:
        writer.writerow(EPISODE_COLUMNS)
    return f, writer


class RunRecorder:
    """Writes a run's outputs; cheap enough to call once per episode and learner step."""

    def __init__(
        self, run_dir: str, config: Mapping[str, Any], *, tensorboard: bool = True, frames_per_step: Optional[int] = None
    ) -> None:
        self.run_dir = run_dir
        self.frames_per_step = frames_per_step  # env frames per agent step (Atari: the action repeat), if known
        os.makedirs(run_dir, exist_ok=True)
        self.checkpoint_dir = os.path.join(run_dir, "checkpoints")
        with open(os.path.join(run_dir, "config.yaml"), "w") as f:
            yaml.safe_dump(dict(config), f, sort_keys=False)
        self._episodes_file, self._episodes = _episode_csv(os.path.join(run_dir, "episodes.csv"))
        self._eval_file, self._eval = _episode_csv(os.path.join(run_dir, "eval.csv"))
        self.last_eval: list[float] = []  # returns of the last evaluation round
        self.eval_curve: list[tuple[int, float]] = []  # (env_steps, mean return) of every round
        self.returns: collections.deque[float] = collections.deque(maxlen=100)
        self.curve: list[tuple[int, float]] = []  # (env_steps, return) of every episode
        self.episodes = 0
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when used

            self._writer = SummaryWriter(os.path.join(run_dir, "tb"))
        self._last_flush = time.monotonic()

    # -- streams ------------------------------------------------------------------------

    def episode(self, record: EpisodeRecord) -> None:
        self._episodes.writerow(
            (record.env_steps, f"{record.episode_return:.6g}", record.episode_length, record.task)
        )
        self.returns.append(record.episode_return)
        self.curve.append((record.env_steps, record.episode_return))
        self.episodes += 1
        if self._writer is not None:
            self._writer.add_scalar("episode/return", record.episode_return, record.env_steps)
            self._writer.add_scalar("episode/length", record.episode_length, record.env_steps)
        self._maybe_flush()

    def evaluation(self, records: list[EpisodeRecord]) -> None:
        """One evaluation round: its episodes go to ``eval.csv``, their mean to TensorBoard."""
        for r in records:
            self._eval.writerow((r.env_steps, f"{r.episode_return:.6g}", r.episode_length, r.task))
        self._eval_file.flush()
        if not records:
            return
        self.last_eval = [r.episode_return for r in records]
        mean = sum(self.last_eval) / len(self.last_eval)
        self.eval_curve.append((records[0].env_steps, mean))
        if self._writer is not None:
            self._writer.add_scalar("eval/mean_return", mean, records[0].env_steps)

    def mean_eval_return(self) -> Optional[float]:
        return sum(self.last_eval) / len(self.last_eval) if self.last_eval else None

    def scalars(self, prefix: str, values: Mapping[str, float], env_steps: int) -> None:
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(f"{prefix}/{name}", value, env_steps)

    def mean_return(self) -> Optional[float]:
        return sum(self.returns) / len(self.returns) if self.returns else None

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self._last_flush > 5.0:
            self._episodes_file.flush()
            self._last_flush = now

    # -- the end ------------------------------------------------------------------------

    def finish(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """Writes ``summary.json`` and ``learning_curve.png``; closes the streams."""
        full = dict(summary)
        full.setdefault("episodes", self.episodes)
        full.setdefault("mean_episode_return_last_100", self.mean_return())
        full.setdefault("mean_eval_return", self.mean_eval_return())
        full.setdefault("eval_episodes", len(self.last_eval))
        if self.frames_per_step is not None and "env_steps" in full:
            full.setdefault("frames_per_step", self.frames_per_step)
            full.setdefault("frames", int(full["env_steps"]) * self.frames_per_step)
        with open(os.path.join(self.run_dir, "summary.json"), "w") as f:
            json.dump(full, f, indent=2, sort_keys=True)
            f.write("\n")
        self._episodes_file.close()
        self._eval_file.close()
        if self._writer is not None:
            self._writer.close()
        plot_learning_curve(self.curve, os.path.join(self.run_dir, "learning_curve.png"), full, self.eval_curve)
        return full


def plot_learning_curve(
    curve: list[tuple[int, float]], path: str, summary: Mapping[str, Any],
    eval_curve: Optional[list[tuple[int, float]]] = None,
) -> None:
    """Episode returns against env steps, with the mean of the last 100 episodes and the evaluation rounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if curve:
        steps = [s for s, _ in curve]
        returns = [r for _, r in curve]
        window: collections.deque[float] = collections.deque(maxlen=100)
        smooth = []
        for r in returns:
            window.append(r)
            smooth.append(sum(window) / len(window))
        ax.plot(steps, returns, ".", markersize=2, alpha=0.3, label="episode return")
        ax.plot(steps, smooth, "-", linewidth=2, label="mean of last 100")
    if eval_curve:
        ax.plot([s for s, _ in eval_curve], [r for _, r in eval_curve], "o-", label="evaluation (mean)")
    if curve or eval_curve:
        ax.legend(loc="lower right")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"{summary.get('env', '')}  seed {summary.get('seed', '')}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
