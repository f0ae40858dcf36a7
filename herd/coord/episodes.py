"""Finished episodes as entries of the run's Redis stream (``herd:{run}:episodes``).

Actors append (through ``Coordinator.report_episodes``); ``herd up`` and the
learner read them in order with ``read_episodes`` to log returns. Each entry is
the fields of an :class:`~herd.types.EpisodeRecord` as strings.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from herd.types import EpisodeRecord

_TYPES = typing.get_type_hints(EpisodeRecord)


def encode(record: EpisodeRecord) -> dict[str, str]:
    """EpisodeRecord -> stream entry fields (``str(float)`` round-trips exactly)."""
    return {f.name: str(getattr(record, f.name)) for f in dataclasses.fields(EpisodeRecord)}


def decode(fields: dict[str, str]) -> EpisodeRecord:
    """Stream entry fields -> EpisodeRecord; unknown fields are ignored, missing ones take defaults."""
    return EpisodeRecord(**{k: _TYPES[k](v) for k, v in fields.items() if k in _TYPES})


def stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """An XREAD reply for one stream -> its ``(id, fields)`` entries (RESP2 list or RESP3 dict shape)."""
    if not reply:
        return []
    entries: list[tuple[str, dict[str, str]]]
    if isinstance(reply, dict):
        (entries,) = reply.values()
        if entries and isinstance(entries[0], list):  # RESP3 wraps the entries in one more list
            entries = entries[0]
        return entries
    entries = reply[0][1]
    return entries
