"""What an agent tells the generic services: a flat version of Acme's builder.

Each agent folder (``herd/agents/<name>/``) ends in one ``spec.py`` holding ``SPEC``, an
:class:`AgentSpec`; the registry (``herd/agents/registry.py``) maps names to those modules.
The actor, learner, replay and parameter services and ``herd train`` ask the spec, so none
of them names an agent:

* ``config_cls`` and ``presets`` — the agent's frozen config dataclass (every field documents
  itself) and named starting points; ``auto_preset`` picks one from the environment;
* ``tables`` — the replay tables it needs (sampler, remover, rate limiter, sizes);
* ``make_adder`` — how an actor turns steps into items;
* ``make_policy`` / ``make_eval_policy`` — acting (with exploration) and evaluating, on the
  actors' device;
* ``make_updater`` — the learning step, on the learner's device.

Devices arrive resolved (``herd.devices``: a ``torch.device`` that is there), from the entry point.

Agent configs share four fields the services read: ``batch_size`` (items per learner
batch), ``publish_every`` (learner steps between publishes), ``pull_every`` (actor writes
between parameter pulls) and the env steps one item stands for, :attr:`AgentSpec.frames_per_item`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import torch

from herd import config as hc
from herd import docs_links
from herd.agents.base import EnvInfo, Policy, Updater
from herd.tables import TableConfig

if TYPE_CHECKING:
    from herd.adders import Adder
    from herd.interfaces import TrajectoryWriter
    from herd.run_config import RunConfig


@dataclasses.dataclass(frozen=True)
class ActingContext:
    """Where a policy acts: its seed, which of the run's environments it steps, and on which device."""

    seed: int
    env_ids: range  # global indices of this actor's environments among all actors' environments
    total_envs: int  # environments over all actors
    device: torch.device = torch.device("cpu")  # the run's actor_device, resolved


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """Everything the generic services need to run one agent."""

    name: str
    paper: str  # the reference the agent follows
    action_kinds: tuple[str, ...]  # "discrete" and/or "continuous"
    config_cls: type
    presets: Mapping[str, Callable[[], Any]]
    auto_preset: Callable[[EnvInfo], str]
    tables: Callable[[Any, "RunConfig"], tuple[TableConfig, ...]]
    make_adder: Callable[[Any, EnvInfo, "TrajectoryWriter"], "Adder"]
    make_policy: Callable[[Any, EnvInfo, ActingContext], Policy]
    make_eval_policy: Callable[[Any, EnvInfo, int, torch.device], Policy]  # config, env, seed, actor device
    make_updater: Callable[[Any, EnvInfo, "RunConfig", torch.device], Updater]  # ..., the run, learner device
    frames_per_item: Callable[[Any], int]  # env steps one sampled item stands for (learner frames)
    hot_fields: tuple[str, ...] = ()  # agent fields the learner's ReloadConfig applies without a restart
    # Fills the config's ``auto`` fields from the env and the learner's device setting:
    # (config, env, learner_device) -> (config, one "field: why" line per decision), for ``herd config``.
    resolve_auto: Optional[Callable[[Any, EnvInfo, str], tuple[Any, tuple[str, ...]]]] = None

    def resolve_preset(self, name: str, info: Optional[EnvInfo]) -> str:
        """A concrete preset name (``auto`` decides from ``info``); ``ConfigError`` for unknown names."""
        if name == "auto":
            if info is None:
                raise hc.ConfigError("config key 'agent_preset': 'auto' needs the environment's specs")
            return self.auto_preset(info)
        if name not in self.presets:
            raise hc.ConfigError(
                f"config key 'agent_preset': {name!r} is not a preset of agent {self.name!r}; "
                f"allowed: auto, {', '.join(self.presets)}", docs_links.agent_page(self.name)
            )
        return name

    def check_env(self, info: EnvInfo) -> None:
        """``ConfigError`` unless this agent can act in an environment of these specs."""
        kind = info.action_spec.kind
        if kind not in self.action_kinds:
            raise hc.ConfigError(
                f"config key 'env': {info.task} has {kind} actions, but agent {self.name!r} supports "
                f"{' and '.join(self.action_kinds)} actions only", docs_links.agent_page(self.name)
            )

    def table(self, config: Any, run: "RunConfig") -> TableConfig:
        """The table actors write to and the learner samples from (the first one the run lists)."""
        return run.replay.tables[0] if run.replay.tables else self.tables(config, run)[0]
