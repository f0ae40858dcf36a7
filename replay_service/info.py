"""A table's ``Table.info()`` snapshot as the ``herd.v1.TableInfo`` the Info RPC returns.

Where it sits: ``replay_service.servicer.Info`` -> here -> operators, tests, the metrics exporter.
"""

from __future__ import annotations

import re

from herd.v1 import replay_pb2
from replay_service.selectors import SELECTORS
from replay_service.table import TableInfo

_SELECTOR_BY_CLASS = {cls.__name__: name for name, cls in SELECTORS.items()}
_EXPONENT = re.compile(r"priority_exponent=([-+0-9.eE]+|nan|inf)")


def table_info(info: TableInfo, blocked_inserts: int = 0, blocked_samples: int = 0) -> replay_pb2.TableInfo:
    """The proto of ``info``; ``blocked_*`` are the calls waiting on the rate limiter right now."""
    state = info.rate_limiter_state
    sampler, exponent = _selector(info.sampler)
    remover, remover_exponent = _selector(info.remover)
    spi, diff = float(state["samples_per_insert"]), float(state["diff"])
    min_size = int(state["min_size_to_sample"])
    min_diff, max_diff = float(state["min_diff"]), float(state["max_diff"])
    limiter = replay_pb2.RateLimiterInfo(
        name=info.rate_limiter,
        samples_per_insert=spi,
        min_size_to_sample=min_size,
        min_diff=min_diff,
        max_diff=max_diff,
        diff=diff,
        # The limiter's own rules (replay_service.rate_limiters) for one more insert / sample.
        can_insert=info.size + 1 <= min_size or diff + spi <= max_diff,
        can_sample=info.size >= max(1, min_size) and diff - 1 >= min_diff,
        blocked_inserts=blocked_inserts,
        blocked_samples=blocked_samples,
        insert_blocked_seconds=info.insert_blocked_seconds,
        sample_blocked_seconds=info.sample_blocked_seconds,
    )
    return replay_pb2.TableInfo(
        name=info.name,
        size=info.size,
        max_size=info.max_size,
        max_times_sampled=info.max_times_sampled,
        num_inserts=info.num_inserts,
        num_samples=info.num_samples,
        num_deletes=info.num_deletes,
        sampler=sampler,
        remover=remover,
        priority_exponent=exponent if sampler == "prioritized" else remover_exponent,
        rate_limiter=limiter,
    )


def _selector(description: str) -> tuple[str, float]:
    """``("prioritized", 0.6)`` from ``Table.info``'s ``"Prioritized(priority_exponent=0.6)"``."""
    name = _SELECTOR_BY_CLASS.get(description.split("(", 1)[0], description)
    match = _EXPONENT.search(description)
    return name, float(match.group(1)) if match else 0.0
