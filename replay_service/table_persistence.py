"""The persistence half of a replay ``Table``: checkpoints and write-ahead-log replay.

Where it sits: ``Table`` (``replay_service.table``) inherits these methods; they read and
write the table's state under its lock. ``checkpoint``/``restore`` write and rebuild the
whole table (``replay_service.checkpoint``); a durable table (``durability: wal``) also has
a ``WriteAheadLog`` attached, to which every change is appended, and :meth:`apply` replays
those records on restart (``replay_service.recovery``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from replay_service import checkpoint as ckpt
from replay_service import wal_records as wr
from replay_service.rate_limiters import limiter_from_info
from replay_service.selectors import make_selector
from replay_service.signature import Signature, normalize_signature

if TYPE_CHECKING:
    from replay_service.table import Table
    from replay_service.wal import WriteAheadLog


class TablePersistence:
    """Checkpoint, restore, journal and log replay of a ``Table`` (a mixin: uses the table's state)."""

    # -- durability (write-ahead log) --------------------------------------------------
    @property
    def journal(self) -> Optional["WriteAheadLog"]:
        """The attached write-ahead log, if the table is durable (``durability: wal``)."""
        return self._journal

    def attach_journal(self, journal: "WriteAheadLog") -> None:
        """From now on every change is appended to ``journal`` (whose next lsn follows :attr:`log_position`)."""
        with self._lock:
            if journal.position != self._lsn:
                raise ValueError(f"journal: starts after lsn {journal.position}, the table is at {self._lsn}")
            self._journal = journal

    @property
    def log_position(self) -> int:
        """Log sequence number of the last logged or replayed change (0: none)."""
        return self._lsn

    def wait_durable(self, position: int, timeout: Optional[float] = None) -> bool:
        """Waits until the log is fsynced up to ``position`` (True at once without a log); False on timeout."""
        journal = self._journal
        return True if journal is None else journal.wait_durable(position, timeout)

    def apply(self, record: wr.Record) -> None:
        """Replays one logged change (restart recovery), bypassing the rate limiter; logs nothing.

        Records are applied in log order onto the checkpoint they follow, which reproduces keys,
        priorities, times sampled, counters and limiter counters exactly. Records naming keys the
        table does not hold (only after a lost checkpoint) are skipped for those keys.
        """
        with self._lock:
            kind = record.kind
            if kind is wr.Kind.INSERT or kind is wr.Kind.INSERTS:
                if self._signature is None:
                    raise wr.RecordError(f"{kind.name} record {record.lsn}: no signature logged before it")
                if kind is wr.Kind.INSERT:
                    if record.key not in self._items:
                        data = wr.item_arrays(record, self._signature)
                        if len(self._items) >= self.max_size:  # only when an eviction record was lost
                            self._delete(self._remover.select()[0])
                        self._apply_insert(record.key, record.priority, data)
                else:  # evictions happen where they did: before an item that finds the table full
                    evicted = iter(record.keys)
                    for i, (item, priority) in enumerate(zip(wr.batch_items(record, self._signature),
                                                             record.priorities)):
                        if record.key + i not in self._items:
                            while len(self._items) >= self.max_size:
                                victim = next(evicted, None)
                                self._delete(victim if victim in self._items else self._remover.select()[0])
                            self._apply_insert(record.key + i, priority, item)
                    for victim in evicted:  # left over only if a record before was lost
                        if victim in self._items:
                            self._delete(victim)
            elif kind is wr.Kind.DELETE:
                if record.key in self._items:
                    self._delete(record.key)
            elif kind is wr.Kind.SAMPLE:
                self._apply_sample(record.keys)
            elif kind is wr.Kind.PRIORITY:
                self._set_priorities([(k, p) for k, p in zip(record.keys, record.priorities) if k in self._items])
            elif kind is wr.Kind.SIGNATURE:
                self._adopt_signature(normalize_signature(ckpt.signature_from_json(record.json())))
            self._lsn = max(self._lsn, record.lsn)

    def adopt_signature(self, signature: Signature) -> None:
        """Fixes the item structure before any insert (recovery: from a log segment's header)."""
        with self._lock:
            self._adopt_signature(signature)

    def _adopt_signature(self, signature: Optional[Signature]) -> None:
        if self._signature is not None and signature != self._signature:
            raise ValueError(f"signature: {signature} differs from the table's {self._signature}")
        self._signature = signature

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint(self, path: ckpt.PathLike) -> None:
        """Writes items, priorities, times sampled, counters and limiter state to ``path`` atomically."""
        with self._lock:  # snapshot references; stored arrays are immutable, so write unlocked
            rows = [(key, it.priority, it.times_sampled, it.data) for key, it in self._items.items()]
            header: dict[str, Any] = {
                "name": self.name,
                "max_size": self.max_size,
                "max_times_sampled": self.max_times_sampled,
                "seed": self.seed,
                "sampler": self._sampler.spec(),
                "remover": self._remover.spec(),
                "rate_limiter": self._limiter.info(),
                "signature": ckpt.signature_to_json(self._signature),
                # Every logged change up to here is in this checkpoint; the log rotates to a new segment.
                "wal_position": self._journal.rotate() if self._journal is not None else self._lsn,
                "counters": {
                    "next_key": self._next_key,
                    "num_inserts": self._num_inserts,
                    "num_samples": self._num_samples,
                    "num_deletes": self._num_deletes,
                },
            }
        ckpt.write(path, header, ckpt.pack_items(rows, self._signature))
        if self._journal is not None:  # the checkpoint is durable: the segments it covers can go
            self._journal.drop_through(header["wal_position"])

    @classmethod
    def restore(cls, path: ckpt.PathLike) -> "Table":
        """Rebuilds a table from :meth:`checkpoint` (same items, keys, counters, limiter state).

        Items are re-inserted in key order: FIFO/LIFO order is exact, random samplers keep
        their distribution (not their random sequence), heaps forget the tie order of updates.
        """
        from replay_service.table import _Item

        header, arrays = ckpt.read(path)
        try:
            table = cls(
                header["name"],
                make_selector(**header["sampler"]),
                make_selector(**header["remover"]),
                max_size=header["max_size"],
                max_times_sampled=header["max_times_sampled"],
                rate_limiter=limiter_from_info(header["rate_limiter"]),
                signature=ckpt.signature_from_json(header["signature"]),
                seed=header["seed"],
            )
            mts = table.max_times_sampled
            for key, priority, times_sampled, data in ckpt.unpack_items(arrays, table._signature):
                table._items[key] = _Item(data, priority, times_sampled)
                table._sampler.insert(key, priority)
                table._remover.insert(key, priority)
                table._remaining += (mts - times_sampled) if mts else 0
            c = header["counters"]
            table._next_key = int(c["next_key"])
            table._num_inserts, table._num_samples = int(c["num_inserts"]), int(c["num_samples"])
            table._num_deletes = int(c["num_deletes"])
            table._lsn = int(header.get("wal_position", 0))  # format_version 1 has none
        except (KeyError, TypeError, ValueError) as e:
            raise ckpt.CheckpointError(f"{path}: malformed table checkpoint ({e!r})") from e
        return table
