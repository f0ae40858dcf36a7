"""One durable table's write-ahead log: append-only segment files, group commit, and reading them back.

Where it sits: a table with ``durability: wal`` holds a :class:`WriteAheadLog` (attached by
``replay_service.recovery``); ``Table`` appends one record per mutation while holding its own lock,
so the log order is the order the table changed in. The servicer acknowledges an insert only
once :meth:`WriteAheadLog.wait_durable` says an ``fsync`` covered it.

Group commit: appending a record only queues its buffers (under the table lock, no system
call). One flusher thread per log writes whatever was appended since its last round with one
``writev`` and fsyncs it, starting rounds at least ``fsync_interval`` apart, so every record
appended during one interval shares one write and one fsync (an idle log's first record is
synced at once). Callers never write or fsync. The queued buffers are immutable (the records'
own bytes, the table's frozen item arrays), so nothing changes them before they are written.

Files: ``<checkpoint_dir>/<table>.wal/<first lsn, 20 digits>.wal``. A checkpoint rotates the log
(a new segment starts at the next lsn) and, once the checkpoint file is safely renamed in place,
deletes the segments it covers. Each segment starts with ``wal_records.MAGIC`` and a HEADER record.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import threading
import time
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from herd.fsutil import drop_cached, fsync_dir
from replay_service import wal_records as wr
from replay_service.checkpoint import signature_from_json, signature_to_json
from replay_service.signature import Signature, normalize_signature

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"(\d{20})\.wal")


class WalError(RuntimeError):
    """The log cannot be written (closed, or a disk error): the table refuses writes until a restart."""


def wal_dir(checkpoint_dir: str, table: str) -> str:
    """Where table ``table`` keeps its log segments."""
    return os.path.join(checkpoint_dir, f"{table}.wal")


def segment_path(directory: str, first_lsn: int) -> str:
    return os.path.join(directory, f"{first_lsn:020d}.wal")


def list_segments(directory: str) -> list[tuple[int, str]]:
    """``(first lsn, path)`` of the segments in ``directory``, oldest first (other files ignored)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), os.path.join(directory, name)) for name in names if (m := _SEGMENT.fullmatch(name))]
    return sorted(found)


class WriteAheadLog:
    """Appends a table's mutations to the current segment; a flusher thread fsyncs them in groups."""

    def __init__(
        self, directory: str, table: str, next_lsn: int, *, fsync_interval: float = 0.010,
        signature: Optional[Signature] = None,
    ) -> None:
        if not (math.isfinite(fsync_interval) and fsync_interval >= 0):
            raise ValueError(f"fsync_interval: expected seconds >= 0, got {fsync_interval!r}")
        self.directory = directory
        self.table = table
        self.fsync_interval = float(fsync_interval)
        self._signature = signature
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # something to fsync, or closing
        self._synced = threading.Condition(self._lock)  # durable position moved, or failed
        self._appended = self._durable = next_lsn - 1
        self._queued: list[Any] = []  # buffers appended since the flusher's last round, in order
        self._retired: list[tuple[int, list[Any]]] = []  # older segments' fds (and their last buffers) to finish
        self._dir_dirty = False
        self._error: Optional[BaseException] = None
        self._closing = False
        self.fsyncs = 0
        self.bytes_written = 0
        os.makedirs(directory, exist_ok=True)
        self._segments: list[int] = [first for first, _ in list_segments(directory)]
        self._fd = self._open_segment(next_lsn)
        self._cut_short = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, name=f"wal-{table}", daemon=True)
        self._thread.start()

    # -- appends (called with the table lock held) ----------------------------------------
    def encode_item(self, data: Mapping[str, np.ndarray], signature: Signature) -> wr.EncodedItem:
        """An item's payload and CRC, computed before the table lock is taken."""
        return wr.encode_item(data, signature)

    def log_signature(self, signature: Signature) -> int:
        self._signature = signature
        return self._append(lambda lsn: wr.json_record(wr.Kind.SIGNATURE, lsn, signature_to_json(signature)))

    def encode_batch(self, stacked: Mapping[str, np.ndarray], priorities: Sequence[float],
                     signature: Signature) -> wr.EncodedBatch:
        """A request's payload and CRC (its stacked, immutable fields), computed before the table lock is taken."""
        return wr.encode_batch(stacked, priorities, signature)

    def log_inserts(self, first_key: int, batch: wr.EncodedBatch, evicted: Sequence[int]) -> int:
        """One INSERTS record: ``batch.count`` items keyed from ``first_key``, and the keys evicted for them."""
        return self._append(lambda lsn: wr.inserts_record(lsn, first_key, batch, evicted))

    def log_insert(self, key: int, priority: float, item: wr.EncodedItem) -> int:
        return self._append(lambda lsn: wr.insert_record(lsn, key, priority, item))

    def log_delete(self, key: int) -> int:
        return self._append(lambda lsn: wr.delete_record(lsn, key))

    def log_sample(self, keys: Sequence[int]) -> int:
        return self._append(lambda lsn: wr.sample_record(lsn, keys))

    def log_priorities(self, keys: Sequence[int], priorities: Sequence[float]) -> int:
        return self._append(lambda lsn: wr.priority_record(lsn, keys, priorities))

    def rotate(self) -> int:
        """Starts a new segment; returns the last lsn of the older ones (what a checkpoint now covers).

        A closed or failed log is not rotated: the checkpoint still covers everything appended."""
        with self._lock:
            last = self._appended
            if self._closing or self._error is not None or self._segments[-1] == last + 1:
                return last  # (an empty segment needs no successor)
            fd = self._open_segment(last + 1)
            self._retired.append((self._fd, self._queued))
            self._fd, self._queued = fd, []
            self._work.notify()
            return last

    # -- durability ---------------------------------------------------------------------
    @property
    def position(self) -> int:
        """The lsn of the last appended record."""
        return self._appended

    @property
    def durable_position(self) -> int:
        """The lsn up to which every record is fsynced."""
        return self._durable

    def wait_durable(self, position: int, timeout: Optional[float] = None) -> bool:
        """Waits until an fsync covered ``position``; False on timeout, WalError if the log failed."""
        with self._lock:
            self._synced.wait_for(lambda: self._durable >= position or self._error is not None, timeout)
            if self._durable >= position:
                return True
            if self._error is not None:
                raise WalError(f"write-ahead log of table {self.table!r} failed: {self._error}") from self._error
            return False

    def drop_through(self, position: int) -> int:
        """Deletes the segments whose records all have lsn <= ``position`` (a checkpoint covers them)."""
        with self._lock:
            segments = list(self._segments)
        dropped = 0
        for first, following in zip(segments, segments[1:]):
            if following - 1 > position:
                break
            try:
                os.unlink(segment_path(self.directory, first))
            except FileNotFoundError:
                pass
            dropped += 1
        with self._lock:
            self._segments = self._segments[dropped:]
        if dropped:
            fsync_dir(self.directory)
        return dropped

    def close(self) -> None:
        """Fsyncs what was appended, stops the flusher and closes the files (appends then raise WalError)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._work.notify()
        self._cut_short.set()
        self._thread.join()
        with self._lock:
            for fd in [*(fd for fd, _ in self._retired), self._fd]:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._retired = []
            self._synced.notify_all()

    # -- internals ----------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._error is not None:
            raise WalError(f"write-ahead log of table {self.table!r} failed: {self._error}") from self._error
        if self._closing:
            raise WalError(f"write-ahead log of table {self.table!r} is closed")

    def _open_segment(self, first_lsn: int) -> int:
        """Creates segment ``first_lsn`` with its header (the flusher makes the new name durable)."""
        path = segment_path(self.directory, first_lsn)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        header = {"format": wr.FORMAT, "format_version": wr.FORMAT_VERSION, "table": self.table,
                  "first_lsn": first_lsn, "signature": signature_to_json(self._signature)}
        try:
            _write_all(fd, [wr.MAGIC, *wr.json_record(wr.Kind.HEADER, 0, header)])
        except OSError:
            os.close(fd)
            raise
        self._segments.append(first_lsn)
        self._dir_dirty = True
        return fd

    def _append(self, build: Any) -> int:
        with self._lock:
            self._check_writable()
            lsn = self._appended + 1
            self._queued.extend(build(lsn))  # written by the flusher, in this order
            self._appended = lsn
            self._work.notify()
            return lsn

    def _flush_loop(self) -> None:
        last_start = -math.inf
        while True:
            with self._lock:
                self._work.wait_for(
                    lambda: self._closing or self._appended > self._durable or bool(self._retired) or self._dir_dirty)
                closing = self._closing
            if not closing:  # at most one fsync per interval: what arrives meanwhile shares the next one
                delay = last_start + self.fsync_interval - time.monotonic()
                if delay > 0:
                    self._cut_short.wait(delay)
            last_start = time.monotonic()
            with self._lock:
                target, retired, fd, dir_dirty = self._appended, self._retired, self._fd, self._dir_dirty
                queued, self._queued = self._queued, []
                self._retired, self._dir_dirty = [], False
            written = 0
            try:
                for old, rest in retired:
                    written += _write_all(old, rest)
                    os.fsync(old)
                    drop_cached(old)
                    os.close(old)
                written += _write_all(fd, queued)
                os.fsync(fd)
                drop_cached(fd)
                if dir_dirty:
                    fsync_dir(self.directory)
            except OSError as e:  # a torn record may be on disk, the page cache state is unknown: stop for good
                with self._lock:
                    self._error = e
                    self._synced.notify_all()
                log.error("write-ahead log write or fsync failed; the table refuses writes until restarted",
                          extra={"table": self.table, "directory": self.directory, "error": str(e)})
                return
            with self._lock:
                self.bytes_written += written
                self.fsyncs += 1
                self._durable = max(self._durable, target)
                self._synced.notify_all()
                if closing and self._appended == self._durable:
                    return


_IOV_MAX = 1024


def _write_all(fd: int, parts: Sequence[Any]) -> int:
    """Writes every buffer of ``parts`` (``writev`` of up to IOV_MAX buffers, continued after a short write)."""
    views = [memoryview(p).cast("B") for p in parts]
    total = 0
    i = 0
    while i < len(views):
        chunk = views[i:i + _IOV_MAX]
        n = os.writev(fd, chunk)
        total += n
        for v in chunk:  # skip what was written; resume inside a partly written buffer
            if n < v.nbytes:
                views[i] = v[n:]
                break
            n -= v.nbytes
            i += 1
    return total


# ------------------------------------------------------------------------------ reading back
@dataclasses.dataclass(frozen=True)
class LogProblem:
    """Where reading a log stopped early: ``truncated`` (a torn tail, normal after kill -9) or corrupt."""

    path: str
    offset: int
    message: str
    truncated: bool


class LogReader:
    """Reads a table's segments in order; stops at the first torn or corrupt record (see ``problem``).

    Replay stops there, not after it, so the recovered table is a state the table really had
    (every record is a change to the state the records before it built).
    """

    def __init__(self, directory: str, table: str) -> None:
        self.directory = directory
        self.table = table
        self.problem: Optional[LogProblem] = None
        self.skipped_segments: list[str] = []  # whole segments after the problem, not read
        self.segments = list_segments(directory)
        self.signature: Optional[Signature] = None  # from the newest segment header that has one
        self.last_lsn = 0
        self._index = 0
        self._current = ("", 0)  # path and offset of the record last yielded

    def records(self) -> Iterator[wr.Record]:
        """Every valid record, oldest first (HEADER records are consumed here)."""
        for i, (first, path) in enumerate(self.segments):
            self._index = i
            yield from self._segment(first, path)
            if self.problem is not None:
                self.skipped_segments = [p for _, p in self.segments[i + 1:]]
                return

    def fail_current(self, message: str) -> None:
        """Marks the record just yielded as the problem (it could not be applied); stop iterating after this."""
        path, offset = self._current
        self.problem = LogProblem(path, offset, message, truncated=False)
        self.skipped_segments = [p for _, p in self.segments[self._index + 1:]]

    def _segment(self, first: int, path: str) -> Iterator[wr.Record]:
        with open(path, "rb") as f:
            offset = 0
            magic = f.read(len(wr.MAGIC))
            summed = wr.MAGICS.get(magic)
            if summed is None:
                self._stop(path, 0, "no segment magic" if magic else "empty segment",
                           truncated=any(m.startswith(magic) for m in wr.MAGICS))
                return
            offset = len(wr.MAGIC)
            expected = None  # lsn of the next record; set by the header
            while True:
                head = f.read(wr.FRAME_BYTES)
                if not head:
                    if expected is None:
                        self._stop(path, offset, "segment has no header record", truncated=True)
                    return
                if len(head) < wr.FRAME_BYTES:
                    self._stop(path, offset, "torn record frame at the end of the file", truncated=True)
                    return
                try:
                    meta_len, payload_len, crc = wr.parse_frame(head)
                except wr.RecordError as e:
                    self._stop(path, offset, str(e), truncated=False)
                    return
                meta = f.read(meta_len)
                payload = f.read(payload_len)
                if len(meta) < meta_len or len(payload) < payload_len:
                    self._stop(path, offset, "torn record at the end of the file", truncated=True)
                    return
                try:
                    record = wr.decode(meta, payload, crc, summed)
                    if expected is None:
                        expected = self._header(record, first)
                    elif record.kind is wr.Kind.HEADER or record.lsn != expected:
                        raise wr.RecordError(f"record lsn {record.lsn} ({record.kind.name}), expected {expected}")
                    else:
                        expected += 1
                        self.last_lsn = record.lsn
                        if record.kind is wr.Kind.SIGNATURE:
                            self.signature = normalize_signature(signature_from_json(record.json()))
                        self._current = (path, offset)
                        yield record
                except (wr.RecordError, ValueError, TypeError, KeyError) as e:
                    self._stop(path, offset, str(e), truncated=False)
                    return
                offset += wr.FRAME_BYTES + meta_len + payload_len

    def _header(self, record: wr.Record, first: int) -> int:
        if record.kind is not wr.Kind.HEADER:
            raise wr.RecordError(f"first record is {record.kind.name}, expected HEADER")
        header = record.json()
        if not isinstance(header, dict) or header.get("format") != wr.FORMAT:
            raise wr.RecordError(f"not a replay log segment (header {header!r})")
        if header.get("format_version") not in wr.READ_VERSIONS:
            raise wr.RecordError(f"log format_version {header.get('format_version')!r} is not supported "
                                 f"(this build reads versions {list(wr.READ_VERSIONS)})")
        if header.get("table") != self.table or header.get("first_lsn") != first:
            raise wr.RecordError(f"segment header says table {header.get('table')!r}, first lsn "
                                 f"{header.get('first_lsn')!r}; expected {self.table!r}, {first}")
        if header.get("signature") is not None:
            self.signature = normalize_signature(signature_from_json(header["signature"]))
        return first

    def _stop(self, path: str, offset: int, message: str, *, truncated: bool) -> None:
        self.problem = LogProblem(path, offset, message, truncated)


def describe(problem: LogProblem) -> dict[str, Any]:
    """The log fields of a :class:`LogProblem` (JSON-able)."""
    return {"path": problem.path, "offset": problem.offset, "problem": problem.message,
            "truncated": problem.truncated}


__all__ = ["LogProblem", "LogReader", "WalError", "WriteAheadLog", "describe", "list_segments", "segment_path",
           "wal_dir"]
