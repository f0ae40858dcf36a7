"""How a replay table comes back after a restart, by its ``durability``: nothing, its checkpoint, or checkpoint + log.

Where it sits: ``replay_service.main.build_tables`` calls :func:`open_table` for every configured
table before the server starts.

- ``none``: a fresh table; nothing is read or written.
- ``checkpoint``: ``<checkpoint_dir>/<table>.npz`` if present (a corrupt file is reported, moved
  aside and skipped).
- ``wal``: that checkpoint, then every record of ``<checkpoint_dir>/<table>.wal/`` past the
  checkpoint's ``wal_position``, in order. Replay stops at the first torn or corrupt record (a
  torn tail is what ``kill -9`` mid-append leaves) and reports its path and offset. The
  recovered table is then checkpointed at once, the old segments are deleted (corrupt ones
  are kept aside as ``*.corrupt-<time>``), and a fresh segment is opened for new changes.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Optional

from replay_service import wal
from replay_service.checkpoint import CheckpointError, checkpoint_path
from replay_service.config import TableConfig, make_table
from replay_service.table import Table

log = logging.getLogger("herd.replay")


def open_table(config: TableConfig, checkpoint_dir: str, seed: int) -> Table:
    """The table ``config`` describes, restored as its durability allows (see the module docstring)."""
    if config.durability == "none" or not checkpoint_dir:
        return make_table(config, seed=seed)
    table = restore_checkpoint(checkpoint_dir, config) or make_table(config, seed=seed)
    if config.durability == "wal":
        replay_log(table, checkpoint_dir, config)
    return table


def restore_checkpoint(directory: str, config: TableConfig) -> Optional[Table]:
    """The table of ``<directory>/<name>.npz``, or None if absent or unreadable (reported and moved aside)."""
    path = checkpoint_path(directory, config.name)
    if not os.path.exists(path):
        return None
    try:
        table = Table.restore(path)
        if table.name != config.name:
            raise CheckpointError(f"{path}: holds table {table.name!r}, not {config.name!r}")
    except (CheckpointError, OSError, ValueError) as e:
        aside = _move_aside(path)
        log.error("table checkpoint unreadable, starting the table without it",
                  extra={"table": config.name, "path": path, "moved_to": aside, "error": str(e)})
        return None
    info = table.info()
    log.info("table restored", extra={"table": info.name, "path": path, "size": info.size,
                                      "num_inserts": info.num_inserts, "rate_limiter": info.rate_limiter,
                                      "wal_position": table.log_position})
    if (info.max_size, info.rate_limiter) != (config.max_size, config.rate_limiter):
        log.warning("restored table keeps its checkpointed settings, not the configured ones",
                    extra={"table": info.name, "max_size": info.max_size, "rate_limiter": info.rate_limiter})
    return table


def replay_log(table: Table, checkpoint_dir: str, config: TableConfig) -> None:
    """Applies the log past the table's checkpoint, checkpoints the result, and attaches a fresh log."""
    directory = wal.wal_dir(checkpoint_dir, config.name)
    reader = wal.LogReader(directory, config.name)
    start = table.log_position
    replayed = 0
    started = time.monotonic()
    for record in reader.records():
        if record.lsn > start:
            try:
                if table.signature is None and reader.signature is not None:  # from the segment header
                    table.adopt_signature(reader.signature)
                table.apply(record)
            except ValueError as e:  # a record that does not fit the table (e.g. another signature)
                reader.fail_current(f"record {record.lsn} does not apply: {e}")
                break
            replayed += 1
    problem = reader.problem
    if problem is not None:
        fields = {"table": config.name, **wal.describe(problem), "skipped_segments": reader.skipped_segments}
        if problem.truncated and not reader.skipped_segments:
            log.warning("write-ahead log ends in a torn record (normal after a crash mid-append); "
                        "replayed up to it", extra=fields)
        else:
            log.error("write-ahead log corrupt; replayed up to the bad record, the rest is skipped", extra=fields)
    info = table.info()
    log.info("write-ahead log replayed", extra={
        "table": config.name, "directory": directory, "segments": len(reader.segments), "records": replayed,
        "from_lsn": start, "to_lsn": table.log_position, "size": info.size, "num_inserts": info.num_inserts,
        "seconds": round(time.monotonic() - started, 3)})
    # Checkpoint what was recovered before touching the log, so a crash now loses nothing.
    os.makedirs(checkpoint_dir, exist_ok=True)
    table.checkpoint(checkpoint_path(checkpoint_dir, config.name))
    keep_aside = set(reader.skipped_segments)  # unread data: kept for inspection, like a corrupt segment
    if problem is not None and not problem.truncated:
        keep_aside.add(problem.path)
    for _, path in reader.segments:
        if path in keep_aside:
            _move_aside(path)
        else:
            os.remove(path)
    table.attach_journal(wal.WriteAheadLog(
        directory, config.name, table.log_position + 1, fsync_interval=config.wal_fsync_interval_ms / 1000.0,
        signature=table.signature))


def _move_aside(path: str) -> str:
    """Renames ``path`` to ``<path>.corrupt-<unix time>`` for inspection; returns the new name ('' if it failed)."""
    aside = f"{path}.corrupt-{int(time.time())}"
    try:
        os.replace(path, aside)
    except OSError:
        return ""
    return aside
