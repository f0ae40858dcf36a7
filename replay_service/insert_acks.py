"""The replay server's side of the Insert stream's flow: what one message carries and what acks it gets.

Where it sits: ``ReplayServicer.Insert`` (``replay_service.servicer``) runs two threads per
stream. Its reader takes each message apart (:func:`unpacked`: the message itself, or the
requests a client packed into it, ``InsertRequest.packed``), stores each request and puts a
:class:`Stored` into the stream's :class:`AckQueue`; its handler takes everything queued
there and answers it with one cumulative :func:`ack_message` (``InsertResponse``), waiting a
little for company when the requests' ``ack_every`` allows it. The client's side is
``replay_service.insert_stream``.
"""

from __future__ import annotations

import threading
from typing import NamedTuple, Union

from herd.v1 import replay_pb2
from herd.wire.codec import WireError
from herd.wire.fastpb import LENGTH, scan_fields
from replay_service.table import Table

ACK_DELAY_SECONDS = 0.001
"""Longest a stored request's ack waits for company when its ``ack_every`` lets it (see ``AckQueue``)."""
MAX_ACKS_PER_MESSAGE = 1024
"""Most requests one InsertResponse acknowledges (bounds its size; a window is rarely that wide)."""


class Stored(NamedTuple):
    """One stored request of an Insert stream, waiting for its ack."""

    sequence_id: int
    keys: list[int]
    table: Table
    position: int  # the table's log position once stored: >= that of this request's records
    ack_every: int  # its ack may wait until this many requests are stored (0, 1: not at all)


END = object()
"""Put by the reader when its stream ended cleanly (an exception is put when it failed)."""


class AckQueue:
    """Stored requests of one Insert stream waiting for their ack, then what ended the stream.

    The reader thread puts, the handler thread takes all that is queued. A busy stream whose
    requests allow it (``ack_every`` k > 1) wakes the handler once per k requests instead of once
    per request, and its client reads one ack per k: the handler waits for the k-th request at
    most ``delay`` seconds, and a request with a smaller ``ack_every`` (a caller waiting on it)
    ends the wait. A stream that was idle is acknowledged at once."""

    def __init__(self) -> None:
        self._ready = threading.Condition(threading.Lock())
        self._stored: list[Stored] = []
        self._end: object = None  # END or the exception that ended the stream
        self._need = 1  # queued requests that wake the taker: the least ack_every among them
        self._latest = 1  # ack_every of the latest request: what the next wait expects
        self._idle = False  # the taker waits for any request at all

    def put(self, stored: Stored) -> None:
        with self._ready:
            self._stored.append(stored)
            self._latest = max(1, stored.ack_every)
            self._need = min(self._need, self._latest) if len(self._stored) > 1 else self._latest
            if self._idle or len(self._stored) >= self._need:
                self._ready.notify()

    def finish(self, end: object) -> None:
        with self._ready:
            self._end = end
            self._ready.notify()

    def take(self, delay: float) -> tuple[list[Stored], object]:
        """Returns the requests to acknowledge now (at most ``MAX_ACKS_PER_MESSAGE``) and what
        ended the stream once every request before it is taken, else None."""
        with self._ready:
            if not self._enough():
                self._ready.wait_for(self._enough, delay)
            while not self._stored and self._end is None:
                self._idle = True
                self._ready.wait()
                self._idle = False
            taken, self._stored = self._stored[:MAX_ACKS_PER_MESSAGE], self._stored[MAX_ACKS_PER_MESSAGE:]
            self._need = max(1, min((s.ack_every for s in self._stored), default=1))
            return taken, (None if self._stored else self._end)

    def _enough(self) -> bool:
        need = self._need if self._stored else self._latest
        return len(self._stored) >= need or self._end is not None


def last_positions(stored: list[Stored]) -> dict[Table, int]:
    """The highest log position each table must have made durable before ``stored`` may be acked."""
    last: dict[Table, int] = {}
    for s in stored:
        last[s.table] = max(last.get(s.table, 0), s.position)
    return last


def ack_message(stored: list[Stored]) -> replay_pb2.InsertResponse:
    """One InsertResponse acknowledging ``stored`` (in stream order)."""
    if len(stored) == 1:
        return replay_pb2.InsertResponse(sequence_id=stored[0].sequence_id, keys=stored[0].keys)
    return replay_pb2.InsertResponse(
        sequence_id=stored[-1].sequence_id,
        keys=[key for s in stored for key in s.keys],
        keys_per_request=[len(s.keys) for s in stored],
    )


def unpacked(message: Union[bytes, replay_pb2.InsertRequest]) -> list[Union[bytes, replay_pb2.InsertRequest]]:
    """The requests one Insert message carries: itself, or those packed in it (``InsertRequest.packed``),
    each copied out of it (the table keeps what it stores, and a request of its own is the unit it keeps)."""
    if not isinstance(message, bytes) or not message or message[0] != _PACKED_KEY:
        return [message]  # a message that is not packed, or packed after other fields: decode_insert refuses it
    parts = []
    for number, wire_type, start, stop in scan_fields(message, 0, len(message), "InsertRequest"):
        if number != 9 or wire_type != LENGTH:
            raise WireError(f"packed: a message of packed requests holds nothing else (found field {number})")
        parts.append(message[start:stop])
    return parts


_PACKED_KEY = (9 << 3) | LENGTH  # the first byte of a message of packed requests
