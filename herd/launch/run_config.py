"""The run configuration shared by ``herd train`` and ``herd up``.

Built once at the entry point from (in increasing precedence) the defaults, a
YAML file, CLI flags and ``key=value`` overrides. The agent's section starts from
a preset chosen by the observation shape (``agent_preset: auto``): images get
the paper's Atari setting, vectors our classic-control defaults.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, Mapping, Optional

from herd import config as hc
from herd import docs_links
from herd.agents.impala.config import ImpalaConfig
from herd.envs.registry import EnvInfo, env_spec




@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run."""

    env: str = hc.option("gym:CartPole-v1", "environment name: gym:<id>, dmenv:<module>:<factory> or fake:<name>")
    steps: int = hc.option(500_000, "environment steps to train for")
    seed: int = hc.option(1, "random seed of the run (environments, network init, action sampling)")
    actors: int = hc.option(2, "number of actors")
    envs_per_actor: int = hc.option(16, "environments per actor (one batched inference call steps them all)")
    vectorized_env: Optional[bool] = hc.option(None, "use Gymnasium's native vectorized env (none = when the id has one)")
    agent_preset: Literal["auto", "paper", "atari", "classic_control"] = hc.option(
        "auto", "starting point of the agent section: auto picks atari for images, classic_control for vectors"
    )
    agent: ImpalaConfig = hc.option(ImpalaConfig(), "IMPALA hyper-parameters (see herd/agents/impala/config.py)")
    queue_size: int = hc.option(0, "capacity of the replay queue in unrolls (0 = batch_size + actors * envs_per_actor)")
    checkpoint_every: int = hc.option(500, "learner steps between checkpoints")
    torch_threads: int = hc.option(1, "intra-op threads of torch in each process")
    replay_durability: Literal["none", "checkpoint", "wal"] = hc.option(
        "checkpoint", "what of the replay queue survives a crash of `herd serve replay` / `herd up`: none, "
        "checkpoint (the last checkpoint) or wal (every acknowledged insert, fsynced to a log before its ack)"
    )
    replay_wal_fsync_interval_ms: float = hc.option(
        10.0, "wal: inserts arriving within this many ms share one fsync (0 = fsync as soon as possible)"
    )
    replay_checkpoint_every_seconds: float = hc.option(
        0.0, "seconds between replay checkpoints (0 = only at shutdown; wal needs > 0: checkpoints truncate the log)"
    )

    def __post_init__(self) -> None:
        for name in ("steps", "actors", "envs_per_actor", "checkpoint_every", "torch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {self.queue_size}")
        for name in ("replay_wal_fsync_interval_ms", "replay_checkpoint_every_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"config key '{name}': expected a finite number >= 0, got {value!r}")
        if self.replay_durability == "wal" and not self.replay_checkpoint_every_seconds:
            raise ValueError(
                "config key 'replay_durability': 'wal' needs replay_checkpoint_every_seconds > 0 "
                "(only checkpoints truncate the log)"
            )

    @property
    def replay_queue_size(self) -> int:
        if self.queue_size:
            return self.queue_size
        return self.agent.batch_size + self.actors * self.envs_per_actor


def preset(name: str, info: EnvInfo) -> ImpalaConfig:
    """The agent defaults a preset names; ``auto`` decides by observation rank."""
    if name == "auto":
        name = "atari" if len(info.observation_shape) == 3 else "classic_control"
    if name == "atari":
        return ImpalaConfig.atari()
    if name == "classic_control":
        return ImpalaConfig.classic_control()
    return ImpalaConfig()


def load_run_config(
    file: Optional[str] = None,
    flags: Optional[Mapping[str, Any]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    info: Optional[EnvInfo] = None,
) -> tuple[RunConfig, EnvInfo]:
    """Resolves the run config; raises ``ConfigError`` naming any bad key."""
    raw: dict[str, Any] = hc.load_yaml(file) if file else {}
    raw = hc.merge(raw, {k: v for k, v in (flags or {}).items() if v is not None})
    raw = hc.merge(raw, overrides or {})
    agent_raw = raw.pop("agent", {}) or {}
    if not isinstance(agent_raw, Mapping):
        raise hc.ConfigError("config key 'agent' must be a mapping of agent fields", docs_links.AGENTS)
    run = hc.build(RunConfig, raw)
    if info is None:
        try:
            info = env_spec(run.env)
        except (ValueError, ImportError) as e:
            raise hc.ConfigError(f"config key 'env': {e}", docs_links.ENVIRONMENTS) from e
    base = hc.to_dict(preset(run.agent_preset, info))
    agent = hc.build(ImpalaConfig, hc.merge(base, agent_raw), prefix="agent.")
    return dataclasses.replace(run, agent=agent), info
