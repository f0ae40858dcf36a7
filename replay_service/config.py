"""What is tunable in a replay table, and how a table is built from it.

``TableConfig`` is built once at the entry point (CLI flags, YAML, ``HERD_*`` variables);
``make_table`` turns it into a ``Table``. ``ReplayServiceConfig`` is what ``herd serve replay``
(``replay_service.main.serve``) runs: its tables, where it listens, where it checkpoints.
Field docstrings double as ``--help`` text.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping

from herd.options import CoordOptions, SecurityOptions, ServerOptions

from herd.tables import DURABILITY, RATE_LIMITER_NAMES, SELECTOR_NAMES, TableConfig, check_int
from replay_service.rate_limiters import MinSize, Queue, RateLimiter, SampleToInsertRatio
from replay_service.selectors import SELECTORS, make_selector
from replay_service.table import Table

__all__ = ["DURABILITY", "RATE_LIMITER_NAMES", "ReplayServiceConfig", "TableConfig", "make_rate_limiter", "make_table"]

# The table spec in herd/ names selectors without importing them: the two lists must agree.
assert set(SELECTOR_NAMES) == set(SELECTORS), (SELECTOR_NAMES, sorted(SELECTORS))


def make_rate_limiter(config: TableConfig) -> RateLimiter:
    """A fresh limiter as ``config`` describes (each table needs its own)."""
    if config.rate_limiter == "queue":
        return Queue(config.max_size)
    if config.rate_limiter == "min_size":
        return MinSize(config.min_size_to_sample)
    return SampleToInsertRatio(config.samples_per_insert, config.min_size_to_sample, config.error_buffer)



def make_table(config: TableConfig, seed: int = 0) -> Table:
    """Builds the table ``config`` describes; random selectors draw from ``seed``."""
    return Table(
        config.name,
        make_selector(config.sampler, config.priority_exponent),
        make_selector(config.remover, config.priority_exponent),
        max_size=config.max_size,
        max_times_sampled=config.max_times_sampled,
        rate_limiter=make_rate_limiter(config),
        seed=seed,
    )


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _default_tables() -> tuple[TableConfig, ...]:
    return (TableConfig.queue("trajectories", 64),)


@dataclasses.dataclass(frozen=True)
class ReplayServiceConfig:
    """One replay server: its tables, where it listens, how it checkpoints (validated on construction)."""

    server: ServerOptions = dataclasses.field(default_factory=ServerOptions)
    """Where the gRPC server listens and its message-size limit."""
    coord: CoordOptions = dataclasses.field(default_factory=CoordOptions)
    """Redis coordination (the server registers itself as kind ``replay``)."""
    security: SecurityOptions = dataclasses.field(default_factory=SecurityOptions)
    """TLS / mutual TLS and the shared token, for the server and its clients."""
    tables: tuple[TableConfig, ...] = dataclasses.field(default_factory=_default_tables)
    """The tables this server holds (default: one IMPALA queue named 'trajectories' of 64 items);
    TableConfigs or mappings of their fields (YAML)."""
    checkpoint_dir: str = ""
    """Directory of table checkpoints (<table>.npz), restored on start (empty = no checkpoints)."""
    checkpoint_every_seconds: float = 0.0
    """Seconds between periodic checkpoints (0 = only on shutdown and on the Checkpoint RPC)."""
    seed: int = 0
    """Seed of the random selectors; table i draws from seed + i."""
    max_concurrent_calls: int = 128
    """gRPC handler threads: every open Insert or Sample stream holds one (writers + samplers + spare)."""

    def __post_init__(self) -> None:
        if not isinstance(self.server, ServerOptions):
            raise ValueError(f"server: expected ServerOptions, got {type(self.server).__name__}")
        if not isinstance(self.coord, CoordOptions):
            raise ValueError(f"coord: expected CoordOptions, got {type(self.coord).__name__}")
        if isinstance(self.tables, list):
            object.__setattr__(self, "tables", tuple(self.tables))
        if not isinstance(self.tables, tuple) or not self.tables:
            raise ValueError(f"tables: expected a non-empty tuple of TableConfig, got {self.tables!r}")
        object.__setattr__(self, "tables", tuple(_table_config(i, t) for i, t in enumerate(self.tables)))
        seen: set[str] = set()
        for i, table in enumerate(self.tables):
            if not isinstance(table, TableConfig):
                raise ValueError(f"tables[{i}]: expected a TableConfig, got {type(table).__name__}")
            if not _SAFE_NAME.fullmatch(table.name) or table.name in (".", ".."):
                raise ValueError(
                    f"tables[{i}].name: {table.name!r} must use only letters, digits, '_', '.' and '-' "
                    "(it names the checkpoint file)"
                )
            if table.name in seen:
                raise ValueError(f"tables[{i}].name: duplicate table name {table.name!r}")
            seen.add(table.name)
        if not isinstance(self.checkpoint_dir, str):
            raise ValueError(f"checkpoint_dir: expected a string, got {self.checkpoint_dir!r}")
        every = self.checkpoint_every_seconds
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not math.isfinite(every) or every < 0:
            raise ValueError(f"checkpoint_every_seconds: expected a finite number >= 0, got {every!r}")
        if every > 0 and not self.checkpoint_dir:
            raise ValueError("checkpoint_every_seconds: periodic checkpoints need a checkpoint_dir")
        for i, table in enumerate(self.tables):
            if table.durability == "wal" and not self.checkpoint_dir:
                raise ValueError(f"tables[{i}].durability: 'wal' needs a checkpoint_dir (the log lives there)")
            if table.durability == "wal" and every <= 0:
                raise ValueError(
                    f"tables[{i}].durability: 'wal' needs checkpoint_every_seconds > 0 "
                    "(only checkpoints truncate the log)"
                )
        check_int("seed", self.seed, 0)
        check_int("max_concurrent_calls", self.max_concurrent_calls, 4)

    def table_names(self) -> list[str]:
        """The names of the configured tables, in order."""
        return [t.name for t in self.tables]


def _table_config(i: int, table: Any) -> TableConfig:
    """``tables[i]`` as a TableConfig; a mapping (from YAML) is built, its errors prefixed ``tables[i].``."""
    if not isinstance(table, Mapping):
        return table
    unknown = sorted(set(table) - {f.name for f in dataclasses.fields(TableConfig)})
    if unknown:
        raise ValueError(f"tables[{i}].{unknown[0]}: unknown table option")
    try:
        return TableConfig(**table)
    except ValueError as e:
        raise ValueError(f"tables[{i}].{e}") from None
