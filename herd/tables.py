"""What a replay table is, as data: the spec an agent declares and YAML overrides.

An agent (``herd/agents/<name>/``) says which tables it needs as ``TableConfig``s; the run
config (``herd.run_config``) lets ``replay.tables.<name>.<field>`` override them; the replay
service (``replay_service.config.make_table``) builds a ``Table`` from one. This module holds
no replay code, so agents and the run config can name tables without importing a service.
Field docstrings double as reference text.
"""

from __future__ import annotations

import dataclasses
import math

SELECTOR_NAMES = ("fifo", "lifo", "uniform", "prioritized", "max_heap", "min_heap")
RATE_LIMITER_NAMES = ("queue", "min_size", "sample_to_insert_ratio")
DURABILITY = ("none", "checkpoint", "wal")


def check_ratio_range(samples_per_insert: float, error_buffer: float) -> None:
    """Raises unless ``SampleToInsertRatio(samples_per_insert, _, error_buffer)`` can make progress.

    A range ``2 * error_buffer`` narrower than ``2 * max(1, samples_per_insert)`` could block
    inserts and samples for good (Reverb rejects it for the same reason).
    """
    eb, spi = float(error_buffer), float(samples_per_insert)
    if not math.isfinite(eb):
        raise ValueError(f"error_buffer must be finite, got {error_buffer!r}")
    if not (math.isfinite(spi) and spi > 0):
        raise ValueError(f"samples_per_insert must be finite and > 0, got {samples_per_insert!r}")
    if 2 * eb < 2 * max(1.0, spi):
        raise ValueError(
            f"error_buffer ({eb}) gives a range of {2 * eb}, narrower than "
            f"2 * max(1, samples_per_insert) = {2 * max(1.0, spi)}: inserts and/or samples "
            "could block for good"
        )


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
            if value not in SELECTOR_NAMES:
                raise ValueError(f"{field}: {value!r} is not one of {sorted(SELECTOR_NAMES)}")
        check_int("max_size", self.max_size, 1)
        check_int("max_times_sampled", self.max_times_sampled, 0)
        check_int("min_size_to_sample", self.min_size_to_sample, 1)
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
                check_ratio_range(self.samples_per_insert, self.error_buffer)
            except ValueError as e:
                raise ValueError(f"error_buffer: {e}") from None

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


    @classmethod
    def prioritized_replay(
        cls, name: str, max_size: int, *, samples_per_insert: float, min_size: int, error_buffer: float,
        priority_exponent: float = 0.6,
    ) -> "TableConfig":
        """Prioritized experience replay (Schaul et al.; Ape-X): proportional sampling with exponent α,
        oldest evicted first, samples held to ``samples_per_insert`` items per inserted item."""
        return cls(name=name, sampler="prioritized", remover="fifo", max_size=max_size, max_times_sampled=0,
                   rate_limiter="sample_to_insert_ratio", min_size_to_sample=min_size,
                   samples_per_insert=samples_per_insert, error_buffer=error_buffer,
                   priority_exponent=priority_exponent)


def check_int(field: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field}: expected an integer >= {minimum}, got {value!r}")


def table_summary(config: TableConfig, size: int, inserts: int, samples: int) -> dict:
    """What ``summary.json`` reports of one table, from the replay's own counters.

    ``samples_per_insert`` is the achieved ratio after warm-up: a ``SampleToInsertRatio``
    limiter lets inserts through freely until ``min_size_to_sample`` items are in, then holds
    ``samples ≈ spi · (inserts − min_size_to_sample)``.
    """
    out = {"size": size, "inserts": inserts, "samples": samples, "rate_limiter": config.rate_limiter}
    if config.rate_limiter == "sample_to_insert_ratio":
        after_warmup = max(1, inserts - config.min_size_to_sample)
        out["configured_samples_per_insert"] = config.samples_per_insert
        out["samples_per_insert"] = round(samples / after_warmup, 4)
    return out
