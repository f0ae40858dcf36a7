"""The run configuration shared by ``herd train``, ``herd up`` and every ``herd serve`` process.

Built once at the entry point from (in increasing precedence) the defaults, a YAML file, CLI
flags and ``key=value`` overrides. ``agent_name`` picks the agent from the registry
(``herd/agents/registry.py``); its ``agent`` section starts from one of that agent's presets
(``agent_preset: auto`` lets the agent choose from the environment's specs), and its replay
tables start from what the agent declares, which ``replay.tables.<name>.<field>`` overrides.

The resolved config names a concrete preset, so the ``config.yaml`` that ``herd up`` writes
resolves again without building an environment (the replay and parameter servers never do).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

from herd import config as hc
from herd import devices, docs_links
from herd.envs.registry import EnvInfo, env_spec
from herd.tables import TableConfig


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """The replay service's tables, as the agent declares them and YAML overrides them."""

    tables: tuple[TableConfig, ...] = hc.option(
        (), "the agent's tables; override a field with replay.tables.<table>.<field> (e.g. max_size, durability)"
    )
    checkpoint_every_seconds: float = hc.option(
        0.0, "seconds between replay checkpoints (0 = only at shutdown; wal durability needs > 0: checkpoints "
        "truncate the log)"
    )

    def __post_init__(self) -> None:
        value = self.checkpoint_every_seconds
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"config key 'replay.checkpoint_every_seconds': expected a finite number >= 0, got {value!r}")
        for table in self.tables:
            if table.durability == "wal" and not value:
                raise ValueError(
                    f"config key 'replay.tables.{table.name}.durability': 'wal' needs "
                    "replay.checkpoint_every_seconds > 0 (only checkpoints truncate the log)"
                )

    def table(self, name: str) -> TableConfig:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run."""

    env: str = hc.option("gym:CartPole-v1", "environment name: gym:<id>, dmenv:<module>:<factory> or fake:<name>")
    agent_name: str = hc.option("impala", "which agent trains (herd/agents registry): impala or dqn")
    steps: int = hc.option(500_000, "environment steps to train for")
    seed: int = hc.option(1, "random seed of the run (environments, network init, action sampling)")
    actors: int = hc.option(2, "number of actors")
    envs_per_actor: int = hc.option(16, "environments per actor (one batched inference call steps them all)")
    vectorized_env: Optional[bool] = hc.option(None, "use Gymnasium's native vectorized env (none = when the id has one)")
    agent_preset: str = hc.option(
        "auto", "starting point of the agent section, one of the agent's presets; auto lets the agent choose "
        "from the environment (e.g. IMPALA: atari for images, classic_control for vectors)"
    )
    agent: Any = hc.option(None, "the agent's hyper-parameters (herd/agents/<agent_name>/config.py)")
    replay: ReplayConfig = hc.option(ReplayConfig(), "replay tables (filled from the agent) and replay checkpoints")
    eval_every: int = hc.option(
        50_000, "environment steps between evaluation rounds (0 = only the final round at the end of the run)"
    )
    eval_episodes: int = hc.option(
        10, "episodes per evaluation round, run with the agent's evaluation policy in environments of their own"
    )
    checkpoint_every: int = hc.option(500, "learner steps between checkpoints")
    torch_threads: int = hc.option(1, "intra-op threads of torch in each process")
    learner_device: str = hc.option(
        "auto", "torch device of the learner's networks and updates: auto (a GPU if torch sees one, else the "
        "CPU), cpu, cuda, cuda:N or mps (docs/devices.md)"
    )
    actor_device: str = hc.option(
        "cpu", "torch device of the actors' and evaluation's policies: cpu (batched inference of a few "
        "environments is faster there than a round trip to a GPU), auto, cuda, cuda:N or mps"
    )

    def __post_init__(self) -> None:
        devices.check_name(self.learner_device, "learner_device")
        devices.check_name(self.actor_device, "actor_device")
        for name in ("steps", "actors", "envs_per_actor", "checkpoint_every", "torch_threads", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")

    @property
    def total_envs(self) -> int:
        """Training environments over all actors (the ε ladder of Ape-X spans them)."""
        return self.actors * self.envs_per_actor


def _table_overrides(raw: Any) -> dict[str, dict[str, Any]]:
    """``replay.tables`` from YAML: a mapping ``name -> fields`` or a list of mappings with ``name``."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        items = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise hc.ConfigError(f"config key 'replay.tables[{i}]': expected a mapping with a 'name'")
            items.append((entry["name"], {k: v for k, v in entry.items() if k != "name"}))
    else:
        raise hc.ConfigError("config key 'replay.tables' must map table names to their fields")
    out: dict[str, dict[str, Any]] = {}
    for name, fields in items:
        if not isinstance(fields, Mapping):
            raise hc.ConfigError(f"config key 'replay.tables.{name}' must be a mapping of table fields")
        out[str(name)] = dict(fields)
    return out


def resolve_tables(defaults: tuple[TableConfig, ...], raw: Any) -> tuple[TableConfig, ...]:
    """The agent's ``defaults`` with YAML's ``replay.tables`` overrides applied (errors name the key)."""
    overrides = _table_overrides(raw)
    known = [t.name for t in defaults]
    for name in overrides:
        if name not in known:
            raise hc.ConfigError(
                f"unknown config key 'replay.tables.{name}'; this agent's tables: {', '.join(known)}"
            )
    tables = []
    for table in defaults:
        fields = overrides.get(table.name, {})
        if "name" in fields and fields["name"] != table.name:
            raise hc.ConfigError(f"config key 'replay.tables.{table.name}.name': a table keeps the agent's name")
        base = hc.to_dict(table)
        try:
            tables.append(hc.build(TableConfig, hc.merge(base, fields), prefix=f"replay.tables.{table.name}."))
        except hc.ConfigError as e:
            message = str(e)
            if not message.startswith(("unknown config key", "config key")):  # "<key>: <why>" from TableConfig
                key, _, why = message.partition(": ")
                message = f"config key '{key}': {why}"
            raise hc.ConfigError(message) from None
    return tuple(tables)


def load_run_config(
    file: Optional[str] = None,
    flags: Optional[Mapping[str, Any]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    info: Optional[EnvInfo] = None,
    *,
    need_env: bool = True,
    notes: Optional[list[str]] = None,
) -> tuple[RunConfig, Optional[EnvInfo]]:
    """Resolves the run config; raises ``ConfigError`` naming any bad key.

    ``need_env=False`` (the replay and parameter servers) skips building the environment when
    the preset is already concrete; the returned ``EnvInfo`` is then ``None``. The agent's
    ``auto`` fields are filled where the env is known; ``notes`` (if given) gets one line per
    such decision, saying why.
    """
    from herd.agents import registry

    raw: dict[str, Any] = hc.load_yaml(file) if file else {}
    raw = hc.merge(raw, {k: v for k, v in (flags or {}).items() if v is not None})
    raw = hc.merge(raw, overrides or {})
    agent_raw = raw.pop("agent", {}) or {}
    if not isinstance(agent_raw, Mapping):
        raise hc.ConfigError("config key 'agent' must be a mapping of agent fields", docs_links.AGENTS)
    replay_raw = raw.pop("replay", {}) or {}
    if not isinstance(replay_raw, Mapping):
        raise hc.ConfigError("config key 'replay' must be a mapping (tables, checkpoint_every_seconds)")
    replay_raw = dict(replay_raw)
    tables_raw = replay_raw.pop("tables", None)
    run = hc.build(RunConfig, raw)
    spec = registry.get(run.agent_name)
    if info is None and (need_env or run.agent_preset == "auto"):
        try:
            info = env_spec(run.env)
        except (ValueError, ImportError) as e:
            raise hc.ConfigError(f"config key 'env': {e}", docs_links.ENVIRONMENTS) from e
    if info is not None:
        spec.check_env(info)
    preset = spec.resolve_preset(run.agent_preset, info)
    base = hc.to_dict(spec.presets[preset]())
    agent = hc.build(spec.config_cls, hc.merge(base, agent_raw), prefix="agent.")
    if info is not None and spec.resolve_auto is not None:
        agent, why = spec.resolve_auto(agent, info, run.learner_device)
        if notes is not None:
            notes.extend(why)
    run = dataclasses.replace(run, agent=agent, agent_preset=preset)
    tables = resolve_tables(spec.tables(agent, run), tables_raw)
    try:
        replay = hc.build(ReplayConfig, {**replay_raw, "tables": ()}, prefix="replay.")
        replay = ReplayConfig(tables=tables, checkpoint_every_seconds=replay.checkpoint_every_seconds)
    except ValueError as e:
        raise hc.ConfigError(str(e)) from e
    return dataclasses.replace(run, replay=replay), info


__all__ = ["ReplayConfig", "RunConfig", "load_run_config", "resolve_tables"]
