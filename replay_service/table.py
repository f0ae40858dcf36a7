"""The in-process replay table: where actors' trajectories wait for the learner.

A ``Table`` stores trajectory items (``name -> [T, ...]`` arrays, see ``herd.types``) under
integer keys, picks them with a sampler, evicts them with a remover when ``max_size`` is
reached or once sampled ``max_times_sampled`` times, and blocks inserts and samples while
its rate limiter forbids them (Reverb semantics, DESIGN.md §4). It satisfies
``herd.interfaces.TrajectoryWriter`` and ``BatchSource``; the gRPC servicer wraps it.

A durable table (``durability: wal``) has a ``WriteAheadLog`` attached: every change of state
(insert, eviction, sample, priority update) is appended to it under the table lock, and
:meth:`Table.apply` replays those records on restart (``replay_service.recovery``); that
half, with checkpoints, is in ``replay_service.table_persistence``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np

from herd.interfaces import RateLimitTimeout, SampledBatch
from replay_service.protocol import InsertTimeout
from herd.types import stack_items
from replay_service import wal_records as wr
from replay_service.rate_limiters import MinSize, Queue, RateLimiter, TableState, WaitClock
from replay_service.selectors import Fifo, ItemSelector, Priorities, Uniform
from replay_service.selectors import validate_priorities
from replay_service.signature import Signature, SignatureSpec, check_batch, normalize_signature
from replay_service.signature import FrozenBatch, freeze_batch, signature_of
from replay_service.table_persistence import TablePersistence

if TYPE_CHECKING:
    from replay_service.wal import WriteAheadLog

__all__ = ["Table", "TableClosed", "TableInfo", "queue", "uniform_replay"]


class TableClosed(RuntimeError):
    """Raised by calls on (or blocked in) a table that has been closed."""


@dataclasses.dataclass(frozen=True)
class TableInfo:
    """A snapshot of a table's size, counters and rate-limiter state (``Table.info``)."""

    name: str
    size: int
    max_size: int
    max_times_sampled: int
    num_inserts: int
    num_samples: int
    num_deletes: int
    sampler: str
    remover: str
    rate_limiter: str
    rate_limiter_state: dict[str, Any]
    insert_blocked_seconds: float  # total time callers waited on the limiter, pending waits included
    sample_blocked_seconds: float


@dataclasses.dataclass(slots=True)
class _Item:
    data: Mapping[str, np.ndarray]  # read-only arrays [T, ...]
    priority: float
    times_sampled: int = 0


class Table(TablePersistence):
    """A thread-safe replay table bound to its name (one lock, two condition variables).

    Checkpoints and write-ahead-log replay live in :class:`~replay_service.table_persistence.TablePersistence`.
    """

    def __init__(
        self,
        name: str,
        sampler: ItemSelector,
        remover: ItemSelector,
        max_size: int,
        max_times_sampled: int = 0,
        rate_limiter: Optional[RateLimiter] = None,
        signature: Optional[SignatureSpec] = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        for field, sel in (("sampler", sampler), ("remover", remover)):
            if not isinstance(sel, ItemSelector) or len(sel):
                raise ValueError(f"{field}: expected a fresh, empty ItemSelector, got {sel!r}")
        if sampler is remover:
            raise ValueError("remover: must be a different selector object than sampler")
        _check_int("max_size", max_size, 1)
        _check_int("max_times_sampled", max_times_sampled, 0)
        limiter = MinSize(1) if rate_limiter is None else rate_limiter
        if not isinstance(limiter, RateLimiter) or limiter.attached:
            raise ValueError(f"rate_limiter: expected a RateLimiter no other table uses, got {limiter!r}")
        limiter.attached = True
        self.name = name
        self.max_size = int(max_size)
        self.max_times_sampled = int(max_times_sampled)
        self.seed = int(seed)
        self._sampler, self._remover, self._limiter = sampler, remover, limiter
        rng = np.random.default_rng(seed)
        sampler.bind_rng(rng)
        remover.bind_rng(rng)
        self._signature: Optional[Signature] = normalize_signature(signature)
        self._lock = threading.Lock()
        self._can_insert = threading.Condition(self._lock)
        self._can_sample = threading.Condition(self._lock)
        self._items: dict[int, _Item] = {}  # key -> item, in insertion (= key) order
        self._next_key = 1
        self._remaining = 0  # sum over items of (max_times_sampled - times_sampled), when limited
        self._num_inserts = self._num_samples = self._num_deletes = 0
        self._closed = False
        self._journal: Optional["WriteAheadLog"] = None
        self._lsn = 0  # log position of the last logged (or replayed) change; checkpoints record it

    # -- writing -----------------------------------------------------------------------
    def insert(
        self,
        items: Mapping[str, np.ndarray],
        priorities: Optional[Priorities] = None,
        timeout: Optional[float] = None,
    ) -> list[int]:
        """Inserts ``N`` items given stacked ``[T, N, ...]``; returns their keys in order.

        Items go in one by one as the rate limiter allows (a batch larger than a queue
        still gets through as the learner drains it). Blocks up to ``timeout`` seconds
        (``None``: forever, ``0``: not at all), then raises ``InsertTimeout`` (a
        ``RateLimitTimeout``) carrying the keys inserted so far.
        """
        self._check_open()
        arrays, n = check_batch(items)
        prios = validate_priorities(priorities, n)
        signature = self._signature
        if signature is None:  # the first valid insert fixes the item structure
            with self._lock:
                if self._signature is None:
                    fixed = signature_of(arrays)
                    if self._journal is not None:
                        self._lsn = self._journal.log_signature(fixed)
                    self._signature = fixed
                signature = self._signature
        journal = self._journal
        # Validated, immutable memory made outside the lock: received requests are kept as they
        # are, other arrays copied (see freeze_batch); a durable table's log payload and CRC too.
        batch = freeze_batch(arrays, signature, share=n == 1 or self._removes_in_order, stacked=journal is not None)
        logged = journal.encode_batch(batch.stacked, prios, signature) if journal is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        keys: list[int] = []
        with self._lock:
            run = 0  # items inserted since the last log record
            evicted: list[int] = []  # keys evicted for them
            while len(keys) < n:
                self._check_open()
                i = len(keys)
                # The whole rest in one decision when the limiter allows it (it then allows every
                # prefix), else one item at a time, as the learner drains the table.
                allowed = n - i if self._limiter.can_insert(n - i, self._state()) else int(
                    self._limiter.can_insert(1, self._state()))
                if allowed:
                    for j in range(i, i + allowed):
                        keys.append(self._insert_one(batch.items[j], prios[j], evicted))
                    run += allowed
                    continue
                self._log_inserts(keys, run, evicted, batch, prios, logged)  # before the lock is let go
                run, evicted = 0, []
                self._can_sample.notify_all()  # let samplers drain what we inserted so far
                if not self._wait(self._can_insert, self._limiter.insert_wait, deadline):
                    raise InsertTimeout(
                        f"table {self.name!r}: insert timed out after {timeout}s with "
                        f"{len(keys)} of {n} items inserted ({self._limiter!r})",
                        keys,
                    )
            self._log_inserts(keys, run, evicted, batch, prios, logged)
            self._can_sample.notify_all()
        return keys

    def update_priorities(self, keys: Union[Sequence[int], np.ndarray], priorities: Priorities) -> int:
        """Sets new priorities (all validated first); unknown keys are ignored. Returns how many were known."""
        key_arr = np.asarray(keys).reshape(-1)
        if key_arr.size and key_arr.dtype.kind not in "iu":
            raise ValueError(f"keys: expected a sequence of integers, got {keys!r}")
        key_list = [int(k) for k in key_arr]
        prios = validate_priorities(priorities, len(key_list))
        with self._lock:
            known = [(key, p) for key, p in zip(key_list, prios) if key in self._items]
            self._set_priorities(known)
            if known and self._journal is not None:
                self._lsn = self._journal.log_priorities([k for k, _ in known], [p for _, p in known])
        return len(known)

    # -- reading -----------------------------------------------------------------------
    def sample(self, batch_size: int, timeout: Optional[float] = None) -> SampledBatch:
        """Takes ``batch_size`` items atomically and returns them stacked ``[T, B, ...]``.

        Waits until the limiter allows ``B`` samples and the table can supply them, up to
        ``timeout`` seconds (``RateLimitTimeout``). Items reaching ``max_times_sampled``
        are deleted as they are picked, so they never appear twice in one batch; with
        unlimited sampling, random samplers pick with replacement (as Reverb does).
        """
        b = _check_int("batch_size", batch_size, 1)
        if self.max_times_sampled and b > self.max_size * self.max_times_sampled:
            raise ValueError(
                f"batch_size: {b} exceeds max_size * max_times_sampled = "
                f"{self.max_size * self.max_times_sampled}, the most table {self.name!r} can ever supply"
            )
        if b > self._limiter.max_sample_batch():
            raise ValueError(
                f"batch_size: {b} exceeds the range max_diff - min_diff = "
                f"{self._limiter.max_sample_batch()} of {self._limiter!r}, so it could never be "
                "allowed at once (use a larger queue size or error_buffer)"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        keys: list[int] = []
        probs: list[float] = []
        picked: list[Mapping[str, np.ndarray]] = []
        with self._lock:
            while True:
                self._check_open()
                if self._ready_to_sample(b):
                    break
                if not self._wait(self._can_sample, self._limiter.sample_wait, deadline):
                    raise RateLimitTimeout(
                        f"table {self.name!r}: sample of {b} timed out after {timeout}s "
                        f"(size {len(self._items)}, {self._limiter!r})"
                    )
            limit = self.max_times_sampled
            for _ in range(b):
                key, prob = self._sampler.select()
                item = self._items[key]
                item.times_sampled += 1
                keys.append(key)
                probs.append(prob)
                picked.append(item.data)
                if limit:
                    self._remaining -= 1
                    if item.times_sampled >= limit:
                        self._delete(key)
            self._limiter.on_sample(b)
            self._num_samples += b
            if self._journal is not None:  # not waited for: a crash may hand out these items again
                self._lsn = self._journal.log_sample(keys)
            size = len(self._items)
            self._can_insert.notify_all()
        return SampledBatch(
            keys=np.array(keys, dtype=np.uint64),
            probabilities=np.array(probs, dtype=np.float64),
            data=stack_items(picked),  # stored arrays are read-only, so stacking outside the lock is safe
            table_size=size,
        )

    # -- state -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of items currently stored."""
        return len(self._items)

    def info(self) -> TableInfo:
        """Size, counters and limiter state."""
        with self._lock:
            return TableInfo(
                name=self.name,
                size=len(self._items),
                max_size=self.max_size,
                max_times_sampled=self.max_times_sampled,
                num_inserts=self._num_inserts,
                num_samples=self._num_samples,
                num_deletes=self._num_deletes,
                sampler=repr(self._sampler),
                remover=repr(self._remover),
                rate_limiter=self._limiter.name,
                rate_limiter_state=self._limiter.info(),
                insert_blocked_seconds=self._limiter.insert_wait.total(),
                sample_blocked_seconds=self._limiter.sample_wait.total(),
            )

    # -- state shared with the persistence half ----------------------------------------
    @property
    def signature(self) -> Optional[Signature]:
        """Field -> (dtype, item shape), fixed by the first insert (None before it)."""
        return self._signature

    def close(self) -> None:
        """Refuses further calls and wakes every blocked caller with ``TableClosed``."""
        with self._lock:
            self._closed = True
            self._can_insert.notify_all()
            self._can_sample.notify_all()

    # -- internals (called with the lock held) -------------------------------------------
    def _state(self) -> TableState:
        return TableState(size=len(self._items), max_size=self.max_size)

    def _ready_to_sample(self, b: int) -> bool:
        if not self._items or (self.max_times_sampled and self._remaining < b):
            return False
        return self._limiter.can_sample(b, self._state())

    @property
    def _removes_in_order(self) -> bool:
        """Whether items leave in insertion order (FIFO eviction, and sampling out only by a FIFO
        sampler): then items may share their request's buffer, which lives no longer than its newest item."""
        return isinstance(self._remover, Fifo) and (not self.max_times_sampled or isinstance(self._sampler, Fifo))

    def _insert_one(self, data: Mapping[str, np.ndarray], priority: float, evicted: list[int]) -> int:
        if len(self._items) >= self.max_size:
            victim, _ = self._remover.select()
            self._delete(victim)
            evicted.append(victim)  # logged explicitly: a random remover is not replayed
        return self._apply_insert(self._next_key, priority, data)

    def _log_inserts(self, keys: list[int], run: int, evicted: list[int], batch: FrozenBatch,
                     prios: Sequence[float], logged: Optional[wr.EncodedBatch]) -> None:
        """Logs the last ``run`` of ``keys`` (consecutive keys: inserted under one hold of the lock) as one record."""
        if self._journal is None or not run:
            return
        start, n = len(keys) - run, len(prios)
        if run != n:  # part of the request (the limiter made it wait): the stacked slice, copied contiguous
            part = {name: np.ascontiguousarray(a[:, start:start + run]) for name, a in batch.stacked.items()}
            logged = self._journal.encode_batch(part, prios[start:start + run], self._signature or {})
        assert logged is not None
        self._lsn = self._journal.log_inserts(keys[start], logged, evicted)

    def _apply_insert(self, key: int, priority: float, data: Mapping[str, np.ndarray]) -> int:
        self._sampler.insert(key, priority)
        try:
            self._remover.insert(key, priority)
        except ValueError:
            self._sampler.delete(key)
            raise
        self._next_key = max(self._next_key, key + 1)
        self._items[key] = _Item(data, priority)
        self._num_inserts += 1
        self._remaining += self.max_times_sampled
        self._limiter.on_insert(1)
        return key

    def _apply_sample(self, keys: Sequence[int]) -> None:
        limit = self.max_times_sampled
        for key in keys:
            item = self._items.get(key)
            if item is None:
                continue
            item.times_sampled += 1
            if limit:
                self._remaining -= 1
                if item.times_sampled >= limit:
                    self._delete(key)
        self._limiter.on_sample(len(keys))
        self._num_samples += len(keys)

    def _set_priorities(self, pairs: Sequence[tuple[int, float]]) -> None:
        for key, p in pairs:
            self._sampler.update(key, p)
            self._remover.update(key, p)
            self._items[key].priority = p

    def _delete(self, key: int) -> None:
        item = self._items.pop(key)
        self._sampler.delete(key)
        self._remover.delete(key)
        if self.max_times_sampled:
            self._remaining -= self.max_times_sampled - item.times_sampled
        self._num_deletes += 1
        self._limiter.on_delete(1)

    def _wait(self, cond: threading.Condition, clock: WaitClock, deadline: Optional[float]) -> bool:
        """Waits once on ``cond``; False if the deadline had already passed."""
        if deadline is None:
            remaining = None
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
        started = clock.start()
        try:
            cond.wait(remaining)
        finally:
            clock.stop(started)
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise TableClosed(f"table {self.name!r} is closed")


def _check_int(field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{field}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def queue(name: str, size: int, signature: Optional[SignatureSpec] = None, seed: int = 0) -> Table:
    """IMPALA's table: FIFO, each item sampled exactly once, inserts wait while ``size`` items wait."""
    limiter = Queue(size)
    return Table(name, Fifo(), Fifo(), size, 1, rate_limiter=limiter, signature=signature, seed=seed)


def uniform_replay(
    name: str, max_size: int, min_size: int = 1, signature: Optional[SignatureSpec] = None, seed: int = 0
) -> Table:
    """Classic replay: uniform with replacement, oldest evicted first, samples wait for ``min_size`` items."""
    limiter = MinSize(min_size)
    return Table(name, Uniform(), Fifo(), max_size, rate_limiter=limiter, signature=signature, seed=seed)
