"""The agent plug-in boundary: the registry, the specs, and the services that never name an agent."""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import numpy as np
import pytest
import torch

from herd import config as hc
from herd.agents import registry
from herd.agents.spec import ActingContext, AgentSpec
from herd.envs.registry import EnvInfo
from herd.run_config import load_run_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICES = ("actor_service", "learner_service", "replay_service", "param_server")
VECTOR = EnvInfo((4,), np.float32, 2, "gym:CartPole-v1")


def test_no_service_module_imports_a_particular_agent():
    offenders = []
    for service in SERVICES:
        for path in (ROOT / service).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                              if any(n.startswith(f"herd.agents.{a}") for a in registry.names())]
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("herd.launch")]
    assert offenders == []


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_agent_has_a_complete_spec(name):
    spec = registry.get(name)
    assert isinstance(spec, AgentSpec) and spec.name == name and spec.paper
    for preset in spec.presets.values():
        config = preset()
        assert dataclasses.is_dataclass(config) and isinstance(config, spec.config_cls)
        for field in ("batch_size", "publish_every", "pull_every"):  # what the services read
            assert getattr(config, field) >= 1
        for f in dataclasses.fields(config):  # every field documents itself
            assert hc.field_help(spec.config_cls, f.name), f"{name}: agent.{f.name} has no help text"
    assert spec.resolve_preset("auto", VECTOR) in spec.presets


@pytest.mark.parametrize("name", registry.names())
def test_each_agent_runs_one_round_of_act_insert_learn_in_process(name):
    """Its adder's items fit its own table, and its updater learns from them (a per-agent smoke test)."""
    from herd.envs.batched import make_batched_env
    from param_server.store import ParameterStore
    from replay_service.config import make_table
    from learner_service.learner import Learner
    from actor_service.loop import Actor
    from herd.interfaces import RateLimitTimeout

    run, info = load_run_config(None, {"agent_name": name, "steps": 2000, "actors": 1, "envs_per_actor": 4},
                                hc.parse_overrides(["agent.batch_size=8"] + (
                                    ["agent.min_replay_size=64"] if name == "dqn" else [])))
    spec = registry.get(name)
    table = make_table(spec.table(run.agent, run))
    store = ParameterStore()
    learner = Learner(spec.make_updater(run.agent, info, run, torch.device("cpu")), table, store, run.agent.batch_size,
                      sample_timeout=0, frames_per_item=spec.frames_per_item(run.agent))
    learner.publish()
    actor = Actor(make_batched_env(run.env, 4, 0), spec.make_policy(run.agent, info, ActingContext(0, range(4), 4)),
                  spec.make_adder(run.agent, info, table), store)
    steps = 0
    while learner.stats.steps < 3:
        steps += actor.run_unroll()
        while True:
            try:
                learner.step()
            except RateLimitTimeout:
                break
        assert steps < 5000
    assert np.isfinite(learner.stats.last_metrics["total_loss"])
    assert actor.policy.version >= 0


def test_unknown_agent_is_a_config_error_naming_the_known_ones():
    with pytest.raises(hc.ConfigError, match="unknown agent 'ppo'; known agents: impala, dqn"):
        load_run_config(None, {"agent_name": "ppo"})


def test_agent_section_is_validated_with_the_agents_own_class():
    run, _ = load_run_config(None, {"agent_name": "dqn"}, {"agent": {"n_step": 5}}, info=VECTOR)
    assert run.agent.n_step == 5 and run.agent_preset == "classic_control"
    with pytest.raises(hc.ConfigError, match="agent.unroll_length"):
        load_run_config(None, {"agent_name": "dqn"}, {"agent": {"unroll_length": 5}}, info=VECTOR)
    with pytest.raises(hc.ConfigError, match="'agent_preset'.*allowed: auto, paper, classic_control"):
        load_run_config(None, {"agent_name": "dqn", "agent_preset": "atari"}, info=VECTOR)


def test_resolved_config_reloads_without_an_environment(tmp_path):
    """herd up writes the resolved config; replay and params read it back without building an env."""
    import yaml

    run, _ = load_run_config(None, {"agent_name": "dqn", "env": "gym:CartPole-v1"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(hc.to_dict(run), sort_keys=False))
    again, info = load_run_config(str(path), need_env=False)
    assert info is None and again == run


def test_epsilon_ladder_spans_every_environment_of_every_actor():
    from herd.agents.dqn.acting import DQNPolicy
    from herd.agents.dqn.config import DQNConfig

    cfg = DQNConfig.classic_control()
    actor0 = DQNPolicy.for_envs(cfg, VECTOR, range(0, 4), 8, 0).epsilons
    actor1 = DQNPolicy.for_envs(cfg, VECTOR, range(4, 8), 8, 0).epsilons
    ladder = np.concatenate([actor0, actor1])
    assert ladder == pytest.approx([0.4 ** (1 + 7 * i / 7) for i in range(8)])
