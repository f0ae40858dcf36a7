"""Crash-safe file replacement, shared by every checkpoint and persisted file.

A crash (even ``kill -9`` or power loss) leaves either the old file or the new
one, never a torn mix: write a temporary file in the same directory, fsync it,
``os.replace`` it over the target, then fsync the directory so the rename
itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO, Iterator


def fsync_dir(path: str) -> None:
    """Makes renames in directory ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, *, prefix: str = "", suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """``with atomic_write(p) as f: f.write(...)`` replaces ``p`` atomically and durably.

    The temporary file is ``<prefix or .basename.>XXXX<suffix>`` beside ``path``
    (callers that clean up leftovers at start choose a recognisable prefix); it
    is removed if the block raises.
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix or f".{os.path.basename(target)}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
