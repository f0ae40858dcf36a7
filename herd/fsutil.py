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


def drop_cached(fd: int) -> None:
    """Lets the kernel drop a file's (synced) pages from the page cache, for files read back only
    after a restart (logs, big checkpoints): caching them pushes useful pages out, and writing
    into memory never used before costs ~10x the write itself on a VM (docs/reliability.md, "Replay durability")."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


@contextlib.contextmanager
def atomic_write(path: str, *, prefix: str = "", suffix: str = ".tmp", uncached: bool = False) -> Iterator[BinaryIO]:
    """``with atomic_write(p) as f: f.write(...)`` replaces ``p`` atomically and durably.

    The temporary file is ``<prefix or .basename.>XXXX<suffix>`` beside ``path``
    (callers that clean up leftovers at start choose a recognisable prefix); it
    is removed if the block raises. ``uncached``: drop its pages from the page cache once synced.
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix or f".{os.path.basename(target)}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if uncached:
                drop_cached(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def find_executable(name: str, env_var: str, how_to_install: str) -> str:
    """Path of the binary ``name``: ``$env_var`` if set, else the one on PATH.

    Raises ``FileNotFoundError`` saying ``how_to_install`` when there is neither.
    """
    import shutil

    path = os.environ.get(env_var) or shutil.which(name)
    if not path:
        raise FileNotFoundError(f"{name} not found on PATH: {how_to_install}, or set {env_var} to the binary")
    return path


def tail_lines(path: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a child process's log, for an error message ("(no log)" if unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"
