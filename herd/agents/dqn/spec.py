"""Ape-X DQN as the services see it (Horgan et al. 2018, arXiv 1803.00933).

One prioritized table (proportional, α = 0.6, oldest evicted first) behind a
``SampleToInsertRatio`` limiter: the learner samples ``samples_per_insert`` transitions per
inserted one however many actors insert, and actors wait when the learner falls behind.
Actors write n-step transitions with initial priorities from their own TD errors.
"""

from __future__ import annotations

from typing import Any

from herd.adders import NStepTransitionAdder
from herd.agents.base import EnvInfo
from herd.agents.dqn.acting import DQNPolicy, td_priorities
from herd.agents.dqn.config import DQNConfig
from herd.agents.dqn.learning import DQNUpdater
from herd.agents.spec import AgentSpec
from herd.tables import TableConfig

TABLE = "priority_replay"


def _auto_preset(info: EnvInfo) -> str:
    return "paper" if len(info.observation_shape) == 3 else "classic_control"


def error_buffer(config: DQNConfig, run: Any) -> float:
    """How far the ratio may drift: Acme's ``tolerance * spi * min_size``, but at least one round of
    every actor's writes plus a batch, so ``herd train`` (which alternates acting and learning in one
    thread) never blocks an insert it would have to wait for itself.

    A round is at most ``steps_per_write + n_step - 1`` transitions per environment (an episode end
    flushes up to ``n_step`` open ones at once). The tightest point is the end of the warm-up: the
    first round past ``min_replay_size`` arrives before any sample, and may go ``error_buffer`` past
    the target.
    """
    round_items = run.total_envs * (config.steps_per_write + config.n_step - 1)
    return max(config.samples_per_insert_tolerance * config.samples_per_insert * config.min_replay_size,
               config.samples_per_insert * round_items + config.batch_size)


def _tables(config: DQNConfig, run: Any) -> tuple[TableConfig, ...]:
    return (TableConfig.prioritized_replay(
        TABLE, config.replay_size, samples_per_insert=config.samples_per_insert,
        min_size=config.min_replay_size, error_buffer=error_buffer(config, run),
        priority_exponent=config.priority_exponent,
    ),)


def _expected_updates(config: DQNConfig, run: Any) -> int:
    """Updates the run will make: what β anneals over."""
    return int(max(1, run.steps - config.min_replay_size) * config.samples_per_insert / config.batch_size)


def _adder(config: DQNConfig, info: EnvInfo, writer: Any) -> NStepTransitionAdder:
    return NStepTransitionAdder(writer, config.n_step, config.discount, steps_per_write=config.steps_per_write,
                                priority_fn=td_priorities(config.priority_epsilon), reward_clip=config.reward_clip)


SPEC = AgentSpec(
    name="dqn",
    paper="Horgan et al. 2018, Distributed Prioritized Experience Replay (Ape-X, arXiv 1803.00933)",
    action_kinds=("discrete",),
    config_cls=DQNConfig,
    presets={"paper": DQNConfig.paper, "classic_control": DQNConfig.classic_control},
    auto_preset=_auto_preset,
    tables=_tables,
    make_adder=_adder,
    make_policy=lambda cfg, info, ctx: DQNPolicy.for_envs(cfg, info, ctx.env_ids, ctx.total_envs, ctx.seed,
                                                          ctx.device),
    make_eval_policy=lambda cfg, info, seed, device: DQNPolicy(cfg, info, [cfg.eval_epsilon], seed, device),
    make_updater=lambda cfg, info, run, device: DQNUpdater(cfg, info, _expected_updates(cfg, run), run.seed, device),
    frames_per_item=lambda cfg: 1,
    hot_fields=("publish_every",),
)
