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

from replay_service.rate_limiters import MinSize, Queue, RateLimiter, SampleToInsertRatio
from replay_service.selectors import SELECTORS, make_selector
from replay_service.table import Table

RATE_LIMITER_NAMES = ("queue", "min_size", "sample_to_insert_ratio")
DURABILITY = ("none", "checkpoint", "wal")


@dataclasses.dataclass(frozen=True)
class TableConfig:
    """One replay table: selectors, capacity and rate limiter (validated on construction)."""

    name: str = "replay"
    """Table name; actors insert into it and the learner samples from it."""
    sampler: str = "fifo"
    """Which item is sampled next: fifo, lifo, uniform, prioritized, max_heap or min_heap."""
    remover: str = "fifo"
    """Which item is evicted when the table is full (same choices as sampler)."""
    max_size: int = 1024
    """Most items the table holds; for the queue limiter this is the queue size."""
    max_times_sampled: int = 1
    """An item is deleted after this many samples (0 = never)."""
    rate_limiter: str = "queue"
    """queue (IMPALA: each item sampled once, in order), min_size or sample_to_insert_ratio."""
    min_size_to_sample: int = 1
    """Samples wait until the table holds this many items (min_size, sample_to_insert_ratio)."""
    samples_per_insert: float = 1.0
    """Target samples per inserted item (sample_to_insert_ratio)."""
    error_buffer: float = 100.0
    """Allowed drift of inserts * samples_per_insert - samples around its target (sample_to_insert_ratio)."""
    priority_exponent: float = 0.6
    """α of the prioritized selector: P(i) = p_i^α / Σ_j p_j^α."""
    durability: str = "checkpoint"
    """none (memory only), checkpoint (restored from the last checkpoint) or wal (also every
    acknowledged insert: acked only once fsynced to an append-only log); needs checkpoint_dir."""
    wal_fsync_interval_ms: float = 10.0
    """wal: inserts arriving within this many ms share one fsync (0 = fsync as soon as possible)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        for field in ("sampler", "remover"):
            value = getattr(self, field)
            if value not in SELECTORS:
                raise ValueError(f"{field}: {value!r} is not one of {sorted(SELECTORS)}")
        _check_int("max_size", self.max_size, 1)
        _check_int("max_times_sampled", self.max_times_sampled, 0)
        _check_int("min_size_to_sample", self.min_size_to_sample, 1)
        if self.durability not in DURABILITY:
            raise ValueError(f"durability: {self.durability!r} is not one of {list(DURABILITY)}")
        ms = self.wal_fsync_interval_ms
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms < 0:
            raise ValueError(f"wal_fsync_interval_ms: expected a finite number >= 0, got {ms!r}")
        if self.rate_limiter not in RATE_LIMITER_NAMES:
            raise ValueError(f"rate_limiter: {self.rate_limiter!r} is not one of {list(RATE_LIMITER_NAMES)}")
        for field in ("samples_per_insert", "error_buffer", "priority_exponent"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{field}: expected a finite number, got {value!r}")
        if self.samples_per_insert <= 0:
            raise ValueError(f"samples_per_insert: must be > 0, got {self.samples_per_insert}")
        if self.priority_exponent < 0:
            raise ValueError(f"priority_exponent: must be >= 0, got {self.priority_exponent}")
        if self.rate_limiter == "queue":
            wanted = {"sampler": "fifo", "remover": "fifo", "max_times_sampled": 1}
            for field, value in wanted.items():
                if getattr(self, field) != value:
                    raise ValueError(
                        f"{field}: the queue rate limiter needs {field}={value!r}, "
                        f"got {getattr(self, field)!r} "
                        "(or choose rate_limiter 'min_size' / 'sample_to_insert_ratio')"
                    )
        if self.rate_limiter == "sample_to_insert_ratio":
            try:
                self.make_rate_limiter()
            except ValueError as e:
                raise ValueError(f"error_buffer: {e}") from None

    def make_rate_limiter(self) -> RateLimiter:
        """A fresh limiter as configured (each table needs its own)."""
        if self.rate_limiter == "queue":
            return Queue(self.max_size)
        if self.rate_limiter == "min_size":
            return MinSize(self.min_size_to_sample)
        return SampleToInsertRatio(self.samples_per_insert, self.min_size_to_sample, self.error_buffer)

    @classmethod
    def queue(cls, name: str, size: int) -> "TableConfig":
        """IMPALA's preset: FIFO, each item sampled exactly once, at most ``size`` items waiting."""
        return cls(name=name, sampler="fifo", remover="fifo", max_size=size, max_times_sampled=1,
                   rate_limiter="queue")

    @classmethod
    def uniform_replay(cls, name: str, max_size: int, min_size: int = 1) -> "TableConfig":
        """Classic replay: uniform with replacement, oldest evicted first, samples wait for ``min_size``."""
        return cls(name=name, sampler="uniform", remover="fifo", max_size=max_size, max_times_sampled=0,
                   rate_limiter="min_size", min_size_to_sample=min_size)


def make_table(config: TableConfig, seed: int = 0) -> Table:
    """Builds the table ``config`` describes; random selectors draw from ``seed``."""
    return Table(
        config.name,
        make_selector(config.sampler, config.priority_exponent),
        make_selector(config.remover, config.priority_exponent),
        max_size=config.max_size,
        max_times_sampled=config.max_times_sampled,
        rate_limiter=config.make_rate_limiter(),
        seed=seed,
    )


def _check_int(field: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field}: expected an integer >= {minimum}, got {value!r}")


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
        _check_int("seed", self.seed, 0)
        _check_int("max_concurrent_calls", self.max_concurrent_calls, 4)

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
