"""Rate limiters: when a table lets inserts and samples through (Reverb semantics).

A limiter counts inserts, samples and deletes of the one table it serves and keeps

    diff = inserts * samples_per_insert - samples

inside ``[min_diff, max_diff]``: an insert of ``n`` items is allowed while the table
holds at most ``min_size_to_sample`` items after it, or while ``diff`` after it stays
``<= max_diff``; a sample of ``n`` items when the table holds ``>= min_size_to_sample``
items and ``diff`` after it stays ``>= min_diff``. The table blocks callers until their
call is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any, ClassVar

from herd.tables import check_ratio_range

_BIG = sys.float_info.max  # "no bound" (finite, so it round-trips through JSON)


@dataclasses.dataclass(frozen=True)
class TableState:
    """What a limiter sees of its table besides its own counters."""

    size: int
    max_size: int


class WaitClock:
    """Time callers spent blocked on one side of a limiter: finished waits plus ongoing ones."""

    def __init__(self, done: float = 0.0) -> None:
        self.done = done
        self._pending = 0
        self._pending_starts = 0.0

    def start(self) -> float:
        """Marks the start of a wait; returns the token to pass to :meth:`stop`."""
        t = time.monotonic()
        self._pending += 1
        self._pending_starts += t
        return t

    def stop(self, started: float) -> None:
        """Marks the end of the wait that :meth:`start` returned ``started`` for."""
        self._pending -= 1
        self._pending_starts -= started
        self.done += time.monotonic() - started

    def total(self) -> float:
        """Seconds waited so far, including waits still in progress."""
        return self.done + max(0.0, self._pending * time.monotonic() - self._pending_starts)


class RateLimiter:
    """The general limiter; the named subclasses below are the presets to use."""

    name: ClassVar[str] = "rate_limiter"

    def __init__(
        self, samples_per_insert: float, min_size_to_sample: int, min_diff: float, max_diff: float
    ) -> None:
        spi = float(samples_per_insert)
        if not (math.isfinite(spi) and spi > 0):
            raise ValueError(f"samples_per_insert must be finite and > 0, got {samples_per_insert!r}")
        if int(min_size_to_sample) != min_size_to_sample or min_size_to_sample < 1:
            raise ValueError(f"min_size_to_sample must be an integer >= 1, got {min_size_to_sample!r}")
        if not (min_diff <= max_diff):
            raise ValueError(f"min_diff ({min_diff}) must be <= max_diff ({max_diff})")
        self.samples_per_insert = spi
        self.min_size_to_sample = int(min_size_to_sample)
        self.min_diff = float(min_diff)
        self.max_diff = float(max_diff)
        self.inserts = 0
        self.samples = 0
        self.deletes = 0
        self.insert_wait = WaitClock()  # driven by the table while callers are blocked
        self.sample_wait = WaitClock()
        self.attached = False  # set by the Table that owns it: a limiter counts for one table

    # -- decisions -------------------------------------------------------------------
    def can_insert(self, n: int, table: TableState) -> bool:
        """Whether inserting ``n`` more items is allowed now."""
        if table.size + n <= self.min_size_to_sample:
            return True  # below the minimum size inserts are always free
        return (self.inserts + n) * self.samples_per_insert - self.samples <= self.max_diff

    def can_sample(self, n: int, table: TableState) -> bool:
        """Whether sampling ``n`` more items is allowed now."""
        if table.size < self.min_size_to_sample:
            return False
        return self.inserts * self.samples_per_insert - self.samples - n >= self.min_diff

    def max_sample_batch(self) -> float:
        """Largest sample the limiter can ever allow in one step (``max_diff - min_diff``)."""
        return self.max_diff - self.min_diff

    # -- bookkeeping (called by the table under its lock) ------------------------------
    def on_insert(self, n: int = 1) -> None:
        """Counts ``n`` items inserted."""
        self.inserts += n

    def on_sample(self, n: int = 1) -> None:
        """Counts ``n`` items sampled."""
        self.samples += n

    def on_delete(self, n: int = 1) -> None:
        """Counts ``n`` items deleted (evicted or sampled out)."""
        self.deletes += n

    # -- description -----------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Constructor arguments of this limiter (JSON-able)."""
        return {
            "samples_per_insert": self.samples_per_insert,
            "min_size_to_sample": self.min_size_to_sample,
            "min_diff": self.min_diff,
            "max_diff": self.max_diff,
        }

    def counters(self) -> dict[str, int]:
        """Inserts, samples and deletes counted so far."""
        return {"inserts": self.inserts, "samples": self.samples, "deletes": self.deletes}

    def info(self) -> dict[str, Any]:
        """Name, parameters, the effective bounds and the counters (for ``Table.info``)."""
        return {
            "name": self.name,
            "params": self.params(),
            "samples_per_insert": self.samples_per_insert,
            "min_size_to_sample": self.min_size_to_sample,
            "min_diff": self.min_diff,
            "max_diff": self.max_diff,
            "diff": self.inserts * self.samples_per_insert - self.samples,
            **self.counters(),
            "insert_blocked_seconds": self.insert_wait.total(),
            "sample_blocked_seconds": self.sample_wait.total(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class MinSize(RateLimiter):
    """Samples wait until the table holds ``min_size_to_sample`` items; inserts never wait."""

    name = "min_size"

    def __init__(self, min_size_to_sample: int) -> None:
        super().__init__(1.0, min_size_to_sample, -_BIG, _BIG)

    def params(self) -> dict[str, Any]:
        return {"min_size_to_sample": self.min_size_to_sample}


class SampleToInsertRatio(RateLimiter):
    """Keeps ``inserts * spi - samples`` within ``min_size_to_sample * spi ± error_buffer``.

    Below ``min_size_to_sample`` items it behaves like ``MinSize``. A range narrower than
    ``2 * max(1, samples_per_insert)`` could block both sides for good and is rejected.
    """

    name = "sample_to_insert_ratio"

    def __init__(self, samples_per_insert: float, min_size_to_sample: int, error_buffer: float) -> None:
        check_ratio_range(samples_per_insert, error_buffer)
        eb, spi = float(error_buffer), float(samples_per_insert)
        offset = spi * min_size_to_sample
        super().__init__(spi, min_size_to_sample, offset - eb, offset + eb)
        self.error_buffer = eb

    def params(self) -> dict[str, Any]:
        return {
            "samples_per_insert": self.samples_per_insert,
            "min_size_to_sample": self.min_size_to_sample,
            "error_buffer": self.error_buffer,
        }


class Queue(RateLimiter):
    """IMPALA's queue: inserts wait while ``size`` items are waiting, samples while empty.

    Use it with Fifo sampler and remover, ``max_size = size`` and ``max_times_sampled = 1``
    (``replay_service.table.queue`` builds exactly that), so each item is sampled once, in order.
    """

    name = "queue"

    def __init__(self, size: int) -> None:
        if int(size) != size or size < 1:
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        super().__init__(1.0, 1, 0.0, float(size))
        self.size = int(size)

    def params(self) -> dict[str, Any]:
        return {"size": self.size}


RATE_LIMITERS: dict[str, type[RateLimiter]] = {
    cls.name: cls for cls in (RateLimiter, MinSize, SampleToInsertRatio, Queue)
}


def limiter_from_info(info: dict[str, Any]) -> RateLimiter:
    """Rebuilds a limiter, counters included, from :meth:`RateLimiter.info` (checkpoints)."""
    name = info.get("name")
    if name not in RATE_LIMITERS:
        raise ValueError(f"rate_limiter: unknown name {name!r}, expected one of {sorted(RATE_LIMITERS)}")
    limiter = RATE_LIMITERS[name](**info["params"])
    limiter.inserts = int(info["inserts"])
    limiter.samples = int(info["samples"])
    limiter.deletes = int(info["deletes"])
    limiter.insert_wait = WaitClock(float(info.get("insert_blocked_seconds", 0.0)))
    limiter.sample_wait = WaitClock(float(info.get("sample_blocked_seconds", 0.0)))
    return limiter
