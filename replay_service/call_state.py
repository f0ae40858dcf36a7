"""Who is waiting where in the replay server: open Insert streams and calls blocked on rate limiters.

Where it sits: ``replay_service.servicer`` records here which Insert streams hold unacknowledged
requests (so a shutdown can cancel the idle ones at once, and let busy ones finish their acks)
and which calls wait on a table's rate limiter (reported by ``Info`` as blocked inserts/samples).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

import grpc

from herd.wire.status import UnavailableError

_SHUTTING_DOWN = "replay server is shutting down; re-send on a new stream"


class InsertStreams:
    """Open Insert streams and their unacknowledged requests, so shutdown can cancel the idle
    ones at once (nothing of theirs is stored without an ack) and end busy ones after their acks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outstanding: dict[int, list[Any]] = {}  # id(context) -> [context, requests received, not acked]
        self.stopping = False

    @contextlib.contextmanager
    def track(self, context: grpc.ServicerContext) -> Iterator[None]:
        with self._lock:
            self._outstanding[id(context)] = [context, 0]
        try:
            yield
        finally:
            with self._lock:
                self._outstanding.pop(id(context), None)

    def received(self, context: grpc.ServicerContext) -> None:
        """A request arrived: until its ack is sent, shutdown must not cancel the stream."""
        with self._lock:
            if self.stopping:
                raise UnavailableError(_SHUTTING_DOWN)
            self._outstanding[id(context)][1] += 1

    def acked(self, context: grpc.ServicerContext, requests: int = 1) -> None:
        """An ack of ``requests`` requests was sent; once none is outstanding and the server stops, the stream ends."""
        with self._lock:
            entry = self._outstanding[id(context)]
            entry[1] -= requests
            if self.stopping and entry[1] == 0:
                raise UnavailableError(_SHUTTING_DOWN)

    def stop(self) -> None:
        """From now on new requests get UNAVAILABLE; streams waiting for their next request are cancelled."""
        with self._lock:
            self.stopping = True
            idle = [context for context, outstanding in self._outstanding.values() if outstanding == 0]
        for context in idle:
            context.cancel()


class BlockedCalls:
    """How many calls wait on each table's rate limiter right now, per side (insert / sample)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def count(self, table: str, side: str) -> int:
        with self._lock:
            return self._counts.get((table, side), 0)

    @contextlib.contextmanager
    def waiting(self, table: str, side: str) -> Iterator[Callable[[], None]]:
        """Yields ``mark()``: the call counts as blocked from its first ``mark()`` until the block ends."""
        key, counted = (table, side), [False]

        def mark() -> None:
            if not counted[0]:
                counted[0] = True
                with self._lock:
                    self._counts[key] = self._counts.get(key, 0) + 1

        try:
            yield mark
        finally:
            if counted[0]:
                with self._lock:
                    self._counts[key] -= 1
