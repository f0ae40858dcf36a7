"""IMPALA as the services see it (Espeholt et al. 2018, arXiv 1802.01561).

One FIFO queue: each unroll is sampled exactly once, in order, so the learner's data is as
fresh as the actors can make it (V-trace corrects the remaining lag). The queue holds one
batch plus one unroll per environment, so actors block rather than run far ahead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from herd import devices
from herd.adders import SequenceAdder
from herd.agents.base import EnvInfo
from herd.agents.impala.acting import ImpalaEvalPolicy, ImpalaPolicy
from herd.agents.impala.config import ImpalaConfig
from herd.agents.impala.learning import ImpalaUpdater
from herd.agents.impala.networks import pick_torso
from herd.agents.spec import ActingContext, AgentSpec
from herd.tables import TableConfig

TABLE = "trajectories"


def _auto_preset(info: EnvInfo) -> str:
    return "atari" if len(info.observation_shape) == 3 else "classic_control"


def _resolve_auto(config: ImpalaConfig, info: EnvInfo, learner_device: str) -> tuple[ImpalaConfig, tuple[str, ...]]:
    """``torso: auto`` -> the torso for the observation shape and the learner's device
    (``pick_torso``), fixed in the run's config so that the actors build the same network."""
    if config.torso != "auto":
        return config, ()
    gpu = devices.learner_has_gpu(learner_device)
    torso = pick_torso(info.observation_shape, gpu=gpu)
    shape = "x".join(map(str, info.observation_shape))
    why = {"mlp": "vector observations", "minatar": "small boards (under 32 pixels a side)",
           "deep": "screens, and the learner trains on a GPU",
           "shallow": "screens, and the learner trains on the CPU: the deep torso's update of a "
                      "[21, 32, 4, 84, 84] batch takes 6.2 s here, the shallow one's 0.26 s"}[torso]
    return dataclasses.replace(config, torso=torso), (
        f"agent.torso: auto -> {torso} ({shape} observations, learner_device {learner_device}: {why})",)


def _tables(config: ImpalaConfig, run: Any) -> tuple[TableConfig, ...]:
    return (TableConfig.queue(TABLE, size=config.batch_size + run.total_envs),)


SPEC = AgentSpec(
    name="impala",
    paper="Espeholt et al. 2018, IMPALA (arXiv 1802.01561)",
    action_kinds=("discrete",),
    config_cls=ImpalaConfig,
    presets={"paper": ImpalaConfig, "atari": ImpalaConfig.atari, "classic_control": ImpalaConfig.classic_control},
    auto_preset=_auto_preset,
    tables=_tables,
    # Unrolls of T + 1 steps every T steps: the last step bootstraps and starts the next unroll.
    make_adder=lambda cfg, info, writer: SequenceAdder(writer, cfg.unroll_length + 1, cfg.unroll_length),
    make_policy=lambda cfg, info, ctx: ImpalaPolicy(cfg, info, seed=ctx.seed, device=ctx.device),
    make_eval_policy=lambda cfg, info, seed, device: ImpalaEvalPolicy(cfg, info, seed=seed, device=device),
    make_updater=lambda cfg, info, run, device: ImpalaUpdater(cfg, info, total_env_steps=run.steps, seed=run.seed,
                                                              device=device),
    frames_per_item=lambda cfg: cfg.unroll_length,
    resolve_auto=_resolve_auto,
    # Fields a running learner applies between two updates (ReloadConfig); the rest shape
    # the network or the data and only apply on restart.
    hot_fields=("learning_rate", "lr_schedule", "entropy_cost", "baseline_cost", "max_grad_norm",
                "clip_rho_threshold", "clip_pg_rho_threshold", "lambda_", "discount", "reward_clip",
                "publish_every"),
)

__all__ = ["SPEC", "TABLE", "ActingContext"]
