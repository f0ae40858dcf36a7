"""Rate limiters: allowed / blocked decisions against hand-computed arithmetic."""

from __future__ import annotations

from typing import Callable

import pytest

from replay_service.rate_limiters import (
    MinSize,
    Queue,
    RateLimiter,
    SampleToInsertRatio,
    TableState,
    limiter_from_info,
)


def at(limiter: RateLimiter, inserts: int, samples: int, size: int) -> tuple[RateLimiter, TableState]:
    limiter.inserts, limiter.samples, limiter.deletes = inserts, samples, inserts - size
    return limiter, TableState(size=size, max_size=1000)


def test_sample_to_insert_ratio_decisions_by_hand() -> None:
    # spi 2, min size 3, buffer 4: diff = 2 * inserts - samples must stay in [6 - 4, 6 + 4] = [2, 10].
    lim = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=3, error_buffer=4.0)
    assert (lim.min_diff, lim.max_diff) == (2.0, 10.0)
    # Below the minimum size inserts are free (even past max_diff) and samples are blocked.
    assert lim.can_insert(3, at(lim, 0, 0, 0)[1])  # 0 + 3 <= 3
    assert not lim.can_sample(1, at(lim, 2, 0, 2)[1])  # size 2 < 3
    # Inserts: diff after = 2 * (inserts + n) - samples <= 10.
    assert lim.can_insert(1, at(lim, 3, 0, 3)[1])  # 8
    assert lim.can_insert(1, at(lim, 4, 0, 4)[1])  # 10
    assert not lim.can_insert(1, at(lim, 5, 0, 5)[1])  # 12
    assert not lim.can_insert(2, at(lim, 4, 0, 4)[1])  # 12
    assert lim.can_insert(1, at(lim, 5, 2, 5)[1])  # 12 - 2 = 10
    # Samples: size >= 3 and diff after = 2 * inserts - samples - n >= 2.
    assert lim.can_sample(1, at(lim, 3, 0, 3)[1])  # 5
    assert lim.can_sample(4, at(lim, 3, 0, 3)[1])  # 2
    assert not lim.can_sample(5, at(lim, 3, 0, 3)[1])  # 1
    assert not lim.can_sample(1, at(lim, 3, 4, 3)[1])  # 1
    assert lim.can_sample(1, at(lim, 4, 5, 3)[1])  # 8 - 5 - 1 = 2
    # Deletes shrink the table below min size again: samples block, inserts are free.
    assert not lim.can_sample(1, at(lim, 10, 0, 2)[1])
    assert lim.can_insert(1, at(lim, 10, 0, 2)[1])


def test_sample_to_insert_ratio_fractional_rate() -> None:
    # spi 0.5, min size 10, buffer 2: diff = 0.5 * inserts - samples in [3, 7].
    lim = SampleToInsertRatio(samples_per_insert=0.5, min_size_to_sample=10, error_buffer=2)
    assert lim.can_insert(1, at(lim, 13, 0, 13)[1])  # 7.0
    assert not lim.can_insert(1, at(lim, 14, 0, 14)[1])  # 7.5
    assert lim.can_sample(1, at(lim, 10, 1, 10)[1])  # 5 - 1 - 1 = 3
    assert not lim.can_sample(1, at(lim, 10, 2, 10)[1])  # 2


@pytest.mark.parametrize(
    "spi, buffer, ok",
    [
        (1.0, 0.99, False), (1.0, 1.0, True),
        (0.25, 0.9, False), (0.25, 1.0, True),
        (3.0, 2.9, False), (3.0, 3.0, True),
    ],
)
def test_sample_to_insert_ratio_rejects_narrow_ranges(spi: float, buffer: float, ok: bool) -> None:
    # The range is 2 * buffer and must be >= 2 * max(1, spi).
    if ok:
        SampleToInsertRatio(spi, 5, buffer)
    else:
        with pytest.raises(ValueError, match="error_buffer"):
            SampleToInsertRatio(spi, 5, buffer)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: SampleToInsertRatio(0.0, 1, 10), "samples_per_insert"),
        (lambda: SampleToInsertRatio(1.0, 0, 10), "min_size_to_sample"),
        (lambda: SampleToInsertRatio(1.0, 1, float("nan")), "error_buffer"),
        (lambda: MinSize(0), "min_size_to_sample"),
        (lambda: Queue(0), "size"),
        (lambda: RateLimiter(1.0, 1, 5.0, 1.0), "min_diff"),
    ],
)
def test_bad_limiter_arguments(make: Callable[[], RateLimiter], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make()


def test_min_size_never_blocks_inserts() -> None:
    lim = MinSize(3)
    assert lim.can_insert(1, at(lim, 10**9, 0, 10**6)[1])
    assert not lim.can_sample(1, at(lim, 2, 0, 2)[1])
    assert lim.can_sample(1000, at(lim, 3, 10**9, 3)[1])


def test_queue_is_bounded_both_ways() -> None:
    lim = Queue(3)
    # Every item is sampled once and then deleted, so inserts - samples == size.
    assert lim.can_insert(1, at(lim, 0, 0, 0)[1])
    assert lim.can_insert(1, at(lim, 7, 5, 2)[1])
    assert not lim.can_insert(1, at(lim, 8, 5, 3)[1])
    assert not lim.can_sample(1, at(lim, 5, 5, 0)[1])
    assert lim.can_sample(3, at(lim, 8, 5, 3)[1])
    assert not lim.can_sample(4, at(lim, 8, 5, 3)[1])
    assert lim.max_sample_batch() == 3


@pytest.mark.parametrize(
    "limiter", [MinSize(5), SampleToInsertRatio(2.0, 10, 6.0), Queue(8), RateLimiter(1.5, 2, -1.0, 9.0)]
)
def test_info_names_parameters_counters_and_round_trips(limiter: RateLimiter) -> None:
    limiter.on_insert(7)
    limiter.on_sample(3)
    limiter.on_delete(2)
    info = limiter.info()
    assert info["name"] == limiter.name
    assert (info["inserts"], info["samples"], info["deletes"]) == (7, 3, 2)
    assert info["diff"] == 7 * limiter.samples_per_insert - 3
    clone = limiter_from_info(info)
    assert type(clone) is type(limiter) and clone.info() == info
