"""``herd train``: the whole system in one process, deterministic for a seed.

The same classes the services wrap — ``Actor`` (actor_service), ``Table``
(replay_service), ``ParameterStore`` (param_server), ``Learner``
(learner_service) — and the agent the registry names, wired in-process and stepped
in one thread: every actor makes one write of its adder (IMPALA: an unroll per
environment; DQN: a few steps of n-step transitions), then the learner steps until
the table's rate limiter says no (a queue: it is empty; a sample-to-insert ratio:
the ratio is reached). Acting and learning alternate, so a run is reproducible from
its seed. Evaluation rounds run every ``eval_every`` env steps and at the end. The
updater runs on the run's ``learner_device``, the policies on its ``actor_device``
(``herd.devices``); ``summary.json`` names both.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

import torch

from actor_service.loop import Actor, env_seed
from herd import config as hc
from herd import devices
from herd.agents import registry as agents
from herd.agents.spec import ActingContext
from herd.envs.batched import make_batched_env
from herd.envs.registry import EnvInfo
from herd.evaluation import Evaluator, eval_due
from herd.interfaces import RateLimitTimeout
from herd.run_config import RunConfig
from herd.tables import table_summary
from herd.telemetry.progress import Progress
from herd.telemetry.run_dir import RunRecorder
from herd.types import EpisodeRecord
from learner_service.learner import Learner, latest_checkpoint, prune_checkpoints
from param_server.store import ParameterStore
from replay_service.config import make_table



class _NonBlocking:
    """The table as the actors of ``herd train`` write to it: acting and learning share one thread,
    so an insert the rate limiter holds back would wait forever; it fails, saying why, instead."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def insert(self, items: Any, priorities: Any = None, timeout: Optional[float] = None) -> Any:
        try:
            return self.table.insert(items, priorities, timeout=30.0)
        except RateLimitTimeout as e:
            raise RuntimeError(
                f"herd train: the replay's rate limiter holds back an actor's insert, which only the learner of "
                f"this same thread could allow ({e}); widen replay.tables.{self.table.name}.error_buffer"
            ) from e


def train(
    config: RunConfig,
    info: EnvInfo,
    run_dir: str,
    *,
    progress: bool = True,
    tensorboard: bool = True,
) -> dict[str, Any]:
    """Trains until ``config.steps`` environment steps; returns the summary it writes."""
    torch.set_num_threads(config.torch_threads)
    cfg = config.agent
    spec = agents.get(config.agent_name)
    learner_device = devices.resolve(config.learner_device, "learner_device")
    actor_device = devices.resolve(config.actor_device, "actor_device")
    recorder = RunRecorder(run_dir, hc.to_dict(config), tensorboard=tensorboard,
                           frames_per_step=info.frames_per_step)
    store = ParameterStore()
    table = make_table(spec.table(cfg, config), seed=config.seed)
    updater = spec.make_updater(cfg, info, config, learner_device)
    learner = Learner(
        updater, table, store, cfg.batch_size, publish_every=cfg.publish_every, sample_timeout=0,
        frames_per_item=spec.frames_per_item(cfg),
    )
    env_steps = 0
    resumed = latest_checkpoint(recorder.checkpoint_dir)
    if resumed:
        extra = learner.restore(resumed)
        env_steps = int(extra.get("env_steps", 0))
    learner.publish()

    actors = []
    counted = [0] * config.actors  # env steps of each actor already added to env_steps

    def on_episode(record: EpisodeRecord) -> None:
        # Actors report their own step count; the run's count is the sum over actors.
        index = int(record.actor_id.rsplit("-", 1)[1])
        now = env_steps + actors[index].stats.env_steps - counted[index]
        recorder.episode(
            EpisodeRecord(now, record.episode_return, record.episode_length, record.task, record.actor_id)
        )

    for i in range(config.actors):
        seed = env_seed(config.seed, i, config.envs_per_actor)
        env = make_batched_env(config.env, config.envs_per_actor, seed, vectorized=config.vectorized_env)
        first = i * config.envs_per_actor
        context = ActingContext(seed, range(first, first + config.envs_per_actor), config.total_envs, actor_device)
        actors.append(
            Actor(
                env,
                spec.make_policy(cfg, info, context),
                spec.make_adder(cfg, info, _NonBlocking(table)),
                store,
                actor_id=f"actor-{i}",
                task=info.task,
                pull_every=cfg.pull_every,
                on_episode=on_episode,
            )
        )

    evaluator = Evaluator(config.env, spec.make_eval_policy(cfg, info, config.seed, actor_device), store,
                          config.eval_episodes, config.seed, vectorized=config.vectorized_env)
    evaluator.rounds = env_steps // config.eval_every if config.eval_every else 0  # a resumed run goes on counting
    last_eval = -1
    display = Progress(config.steps, enabled=progress, frames_per_step=info.frames_per_step)
    start = time.monotonic()
    start_steps = env_steps
    last_checkpoint = learner.stats.steps
    while env_steps < config.steps:
        for i, actor in enumerate(actors):
            actor.run_unroll()
            env_steps += actor.stats.env_steps - counted[i]
            counted[i] = actor.stats.env_steps
        while True:  # learn until the rate limiter says no
            try:
                metrics = learner.step()
            except RateLimitTimeout:
                break
            if learner.stats.steps % 10 == 0:
                recorder.scalars("learner", metrics, env_steps)
            if learner.stats.steps - last_checkpoint >= config.checkpoint_every:
                learner.save_checkpoint(recorder.checkpoint_dir, {"env_steps": env_steps})
                prune_checkpoints(recorder.checkpoint_dir, keep=3)
                last_checkpoint = learner.stats.steps
        display.update(env_steps, learner.stats.steps, recorder.mean_return())
        if eval_due(env_steps, config.eval_every, evaluator.rounds):
            recorder.evaluation(evaluator.run(env_steps))
            last_eval = env_steps
    wall = time.monotonic() - start
    if last_eval != env_steps:
        recorder.evaluation(evaluator.run(env_steps))  # the final round: what summary.json reports
    evaluator.close()
    display.update(env_steps, learner.stats.steps, recorder.mean_return(), force=True)
    display.close()
    learner.save_checkpoint(recorder.checkpoint_dir, {"env_steps": env_steps})
    prune_checkpoints(recorder.checkpoint_dir, keep=3)
    info_now = table.info()
    replay_tables = {info_now.name: table_summary(spec.table(cfg, config), info_now.size, info_now.num_inserts,
                                                  info_now.num_samples)}
    table.close()

    timing = {
        "inference_seconds": sum(a.stats.inference_seconds for a in actors),
        "env_seconds": sum(a.stats.env_seconds for a in actors),
        "learner_update_seconds": learner.stats.update_seconds,
    }
    return recorder.finish(
        {
            "mode": "train",
            "agent": config.agent_name,
            "env": config.env,
            "seed": config.seed,
            "env_steps": env_steps,
            "learner_steps": learner.stats.steps,
            "wall_seconds": round(wall, 3),
            "env_steps_per_second": round((env_steps - start_steps) / max(wall, 1e-9), 1),
            "param_version": learner.published_version,
            "devices": {"learner": str(learner_device), "actors": str(actor_device)},
            "timing": {k: round(v, 3) for k, v in timing.items()},
            "replay_tables": replay_tables,
        }
    )


def run_from_cli(config: RunConfig, info: EnvInfo, run_dir: Optional[str]) -> dict[str, Any]:
    """Default run dir: ``runs/<env>-seed<seed>-<time>``."""
    if not run_dir:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        safe = config.env.replace(":", "-").replace("/", "-")
        run_dir = os.path.join("runs", f"{safe}-seed{config.seed}-{stamp}")
    return train(config, info, run_dir)
