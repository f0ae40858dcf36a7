"""The actor side of the ``Insert`` stream: pipelined, acknowledged inserts that survive server restarts.

Where it sits: ``TableClient.insert`` / ``insert_async`` (``replay_service.client``) hand each
serialized ``InsertRequest`` to an :class:`InsertStream`, which keeps ONE long-lived bidi ``Insert``
call open per table client: requests go out through a queue-fed iterator, a background thread
reads the acknowledgements and resolves each request's future with its keys.

Flow: a window bounds the unacknowledged requests and their bytes (``max_in_flight``,
``max_in_flight_bytes``). Requests that queue up while gRPC sends the previous message go out
packed in one message (``InsertRequest.packed``, a quarter of the window at most), and a
request nobody blocks on lets the server acknowledge it together with later ones
(``InsertRequest.ack_every``; one ``InsertResponse`` acknowledges every request up to its
``sequence_id``): fewer messages both ways, which is what a stream of small requests costs.

Bookkeeping: every request stays in ``pending`` (in send order) until acknowledged. When the
stream breaks with a connection error (server restarting), the thread reconnects with jittered
exponential backoff (0.1 s doubling to 5 s) and re-sends every pending request, in order, on the
new stream: an acknowledged item is never lost, an unacknowledged one may arrive twice
(at-least-once). When the server rejects a request (a bad tensor, an unknown table, a
rate-limiter timeout), only that request's future fails; the stream is reopened at once for the rest.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import re
import threading
import time
from typing import Callable, Iterator, Optional

import grpc

from herd.interfaces import RateLimitTimeout
from herd.v1 import replay_pb2
from herd.wire.fastpb import length_delimited
from herd.wire.status import UnavailableError
from replay_service.reconnect import CONNECTION_CODES, Backoff, error_from_rpc, status_code
from replay_service.protocol import INSERT_WINDOW_METADATA, INSERTED_KEYS_METADATA, PACKED_INSERTS_METADATA, InsertTimeout

log = logging.getLogger(__name__)

_END = object()  # ends a stream's request iterator
InsertMethod = Callable[[Iterator[bytes]], Iterator[replay_pb2.InsertResponse]]
"""The Insert call with serialized requests (``ReplayClient``'s raw stream-stream callable)."""
_TOO_LARGE = re.compile(r"larger than max \((\d+) vs\. (\d+)\)")
DEFAULT_IN_FLIGHT = 32
"""Unacknowledged requests per stream unless the caller chose a window or the server advises a larger one.

32: with requests packed a quarter of the window per message and acks covering several, a
window of 8 kept too few messages in flight to hide the round trips (docs/benchmarks/replay.md, "Replay
over gRPC": one 64 KiB item per request, 93% of the echo at 8, 133% at 32); the byte window
(``DEFAULT_IN_FLIGHT_BYTES``) bounds what it holds for re-sending."""
DEFAULT_IN_FLIGHT_BYTES = 32 << 20
"""Bytes of unacknowledged requests per stream (a window counts requests and bytes, whichever is
reached first; one request larger than this still goes alone): what a client holds for re-sending."""
_MAX_ADVISED = 1024
PACK_BYTES = 1 << 20
"""Most bytes of requests packed into one message (a request this size or larger goes alone)."""
MAX_PACKED = 64
"""Most requests packed into one message."""


def ack_every_for(window: int, in_flight: int) -> int:
    """How many requests one ack may cover: half of those in flight once this one is sent (a
    stream that is not kept busy is acknowledged request by request), at most a quarter of the
    window, so the three quarters still unacknowledged keep the stream moving while the ack is on its way."""
    return max(1, min(window // 4, in_flight // 2))


@dataclasses.dataclass
class _Pending:
    request: bytes  # a serialized InsertRequest, kept for re-sending
    future: "concurrent.futures.Future[list[int]]"
    abandoned: bool = False  # its caller gave up: not re-sent, but it may be on the wire still


class InsertStream:
    """One table's pipelined insert stream (at most ``max_in_flight`` unacknowledged requests).

    ``max_in_flight=None`` starts at ``DEFAULT_IN_FLIGHT`` and takes the larger window a server
    advises on the stream (``INSERT_WINDOW_METADATA``): a durable table acknowledges only after
    its group commit, so a stream needs more requests in flight to keep the same pace.
    """

    def __init__(self, insert: InsertMethod, table: str, max_in_flight: Optional[int] = None,
                 max_in_flight_bytes: int = DEFAULT_IN_FLIGHT_BYTES) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be >= 1, got {max_in_flight}")
        if max_in_flight_bytes < 1:
            raise ValueError(f"max_in_flight_bytes: must be >= 1, got {max_in_flight_bytes}")
        self.max_in_flight_bytes = max_in_flight_bytes
        self.table = table
        self._advised = max_in_flight is None  # the server may widen the window
        self.pack_bytes = 0  # packing is off until the server says it unpacks (PACKED_INSERTS_METADATA)
        self._packing_allowed = True  # until a packed message was too big for the server
        self._sent_packed = False  # the open stream carried a packed message
        self.max_in_flight = DEFAULT_IN_FLIGHT if max_in_flight is None else max_in_flight
        self._insert = insert
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # pending shrank or grew, or closed
        self._pending: dict[int, _Pending] = {}  # sequence id -> request, in send order
        self._pending_bytes = 0  # their requests' bytes, plus the estimates of those being encoded
        self._next_seq = 1
        self._reserved = 0  # sequence ids handed out whose request is still being encoded
        self._queue: Optional[queue.SimpleQueue] = None  # the open stream's outgoing requests
        self._call: Optional[grpc.Future] = None
        self._closed = False
        self._wake = threading.Event()  # cuts a backoff sleep short on close
        self._thread: Optional[threading.Thread] = None
        self.reconnects = 0

    # -- caller side ------------------------------------------------------------------
    def submit(
        self, encode: Callable[[int, int], bytes], timeout: Optional[float] = None, *, waited_on: bool = False,
        nbytes: int = 0,
    ) -> "concurrent.futures.Future[list[int]]":
        """Sends the request ``encode(sequence_id, ack_every)`` serializes (about ``nbytes`` long) once
        it fits the window: fewer than ``max_in_flight`` requests and at most ``max_in_flight_bytes``
        bytes unacknowledged with it (or none at all).

        Waits up to ``timeout`` seconds for room (``None``: as long as it takes), else raises
        ``RateLimitTimeout``; ``encode`` runs in the caller's thread, outside the lock. The returned
        future resolves to the keys once the server acknowledged. ``ack_every``: a request nobody
        is ``waited_on`` lets the server acknowledge it together with the next ones on a busy
        stream (``ack_every_for``), so it reads fewer, cumulative acks; else 1 (at once).
        """
        future: concurrent.futures.Future[list[int]] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()  # the request cannot be taken back once queued
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._full(nbytes) and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise RateLimitTimeout(
                        f"insert into {self.table!r}: {len(self._pending)} requests still unacknowledged "
                        f"after {timeout}s (server rate-limiting or unreachable)"
                    )
                self._changed.wait(remaining)
            self._check_open()
            seq = self._next_seq
            self._next_seq += 1
            self._reserved += 1
            self._pending_bytes += nbytes
            window = min(self.max_in_flight, max(1, self.max_in_flight_bytes // max(1, nbytes)))
            in_flight = len(self._pending) + self._reserved
            ack_every = 1 if waited_on else ack_every_for(window, in_flight)
        try:
            message = encode(seq, ack_every)
        finally:
            with self._lock:
                self._reserved -= 1
                self._pending_bytes -= nbytes
                self._changed.notify_all()
        with self._lock:
            self._check_open()
            self._pending[seq] = _Pending(message, future)  # dict order = send order (both under the lock)
            self._pending_bytes += len(message)
            if self._queue is not None:
                self._queue.put(message)
            self._changed.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"insert-{self.table}", daemon=True)
                self._thread.start()
        return future

    def _full(self, nbytes: int) -> bool:
        """Whether a request of ``nbytes`` must wait for acks first (called with the lock held)."""
        count = len(self._pending) + self._reserved
        return count >= self.max_in_flight or (count > 0 and self._pending_bytes + nbytes > self.max_in_flight_bytes)

    def _forget(self, seq: int) -> _Pending:
        """Removes a request from ``pending`` (acked, failed or given up; called with the lock held)."""
        pending = self._pending.pop(seq)
        self._pending_bytes -= len(pending.request)
        return pending

    def _forget_all(self) -> list[_Pending]:
        left = list(self._pending.values())
        for seq in list(self._pending):
            self._forget(seq)
        return left

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError(f"insert into {self.table!r}: the client is closed")

    def abandon(self, future: "concurrent.futures.Future[list[int]]") -> None:
        """Stops re-sending the request behind ``future`` after a reconnect (its caller gave up).

        It stays pending until the open stream answers it: the server handles requests in order,
        so an error on the stream must still be matched to the request that caused it."""
        with self._lock:
            for pending in self._pending.values():
                if pending.future is future:
                    pending.abandoned = True
                    return

    def in_flight(self) -> int:
        """Requests sent or queued but not yet acknowledged."""
        with self._lock:
            return len(self._pending)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every request is acknowledged or failed; False on timeout."""
        with self._lock:
            return self._changed.wait_for(lambda: not self._pending or self._closed, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Waits up to ``timeout`` for outstanding acks, then ends the stream; unacked futures fail."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            left = self._forget_all()
            if self._queue is not None:
                self._queue.put(_END)
            call = self._call
            self._changed.notify_all()
        self._wake.set()
        if call is not None:
            call.cancel()
        for pending in left:
            pending.future.set_exception(UnavailableError(f"insert into {self.table!r}: client closed before ack"))
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _messages(self, requests: queue.SimpleQueue) -> Iterator[bytes]:
        """What gRPC sends on one stream: the queued requests in order, until ``_END``. Requests that
        queued up while gRPC sent the previous message go out packed in one message (at most
        ``pack_bytes``, once the server said it unpacks them): one message costs both sides far
        more than its bytes, and this is when a stream has more to send than messages it can send."""
        carry: Optional[bytes] = None
        while True:
            request = carry if carry is not None else requests.get()
            carry = None
            if request is _END:
                return
            limit = self.pack_bytes
            most = min(MAX_PACKED, self.max_in_flight // 4)  # keep >= 4 messages of a full window in flight
            batch, size = [request], len(request)
            while limit and size < limit and len(batch) < most:
                try:
                    more = requests.get_nowait()
                except queue.Empty:
                    break
                if more is _END or size + len(more) > limit:
                    carry = more
                    break
                batch.append(more)
                size += len(more)
            if len(batch) > 1:
                self._sent_packed = True
                yield _pack(batch)
            else:
                yield request

    # -- stream thread -----------------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff()
        while True:
            with self._lock:
                self._changed.wait_for(lambda: bool(self._pending) or self._closed)
                if self._closed:
                    return
                for seq in [seq for seq, pending in self._pending.items() if pending.abandoned]:
                    self._forget(seq)
                self._changed.notify_all()
                if not self._pending:
                    continue
                requests: queue.SimpleQueue = queue.SimpleQueue()
                for pending in self._pending.values():  # re-send, in order, what was never acked
                    requests.put(pending.request)
                self._queue = requests
                self.pack_bytes = 0  # until this stream's server says it unpacks (it may be another version)
                self._sent_packed = False
                try:
                    self._call = call = self._insert(self._messages(requests))
                except ValueError as e:  # the channel was closed under us: nothing will be acked
                    closed_channel = str(e)
                    self._closed = True
                    left = self._forget_all()
                    self._changed.notify_all()
                else:
                    closed_channel = ""
            if closed_channel:
                for pending in left:
                    pending.future.set_exception(UnavailableError(f"insert into {self.table!r}: {closed_channel}"))
                return
            error = self._read_acks(call, backoff)
            with self._lock:
                self._queue = self._call = None
                closed = self._closed
            requests.put(_END)  # releases gRPC's thread blocked on the old iterator
            if closed:
                return
            code = status_code(error) if error is not None else None
            if error is not None and code not in CONNECTION_CODES:
                self._fail_culprits(error)  # the server rejected a request: reopen at once for the rest
                continue
            self.reconnects += 1
            pause = backoff.next()
            log.warning(
                "insert stream broken, reconnecting",
                extra={"table": self.table, "code": code.name if code else "OK", "sleep_seconds": round(pause, 3)},
            )
            self._wake.wait(pause)

    def _read_acks(self, call: Iterator[replay_pb2.InsertResponse], backoff: Backoff) -> Optional[grpc.RpcError]:
        """Resolves futures as acks arrive; returns the error that ended the stream (None: ended cleanly)."""
        first = True
        try:
            for response in call:
                if first:  # initial metadata arrives before the first response: no wait here
                    first = False
                    self._adopt_metadata(call)
                with self._lock:
                    acked = self._take_acked(response.sequence_id)
                    self._changed.notify_all()
                backoff.reset()
                _resolve(acked, response, self.table)
        except grpc.RpcError as e:
            return e
        return None

    def _take_acked(self, sequence_id: int) -> list[_Pending]:
        """Removes and returns (in order) the pending requests an ack up to ``sequence_id`` covers.

        The server acknowledges a stream's requests in order, so these are every pending request
        up to ``sequence_id``: abandoned ones included (the server answered them too)."""
        acked = []
        while self._pending:
            seq = next(iter(self._pending))
            if seq > sequence_id:
                break
            acked.append(self._forget(seq))
        return acked

    def _adopt_metadata(self, call: Iterator[replay_pb2.InsertResponse]) -> None:
        """Takes what the server's initial metadata offers: packing, and a wider window when this
        stream may adopt one (never a narrower one)."""
        metadata = call.initial_metadata() if callable(getattr(call, "initial_metadata", None)) else None
        for key, value in metadata or ():
            if key == PACKED_INSERTS_METADATA and value == "1" and self._packing_allowed:
                self.pack_bytes = PACK_BYTES  # read by the request iterator before each message
            if key == INSERT_WINDOW_METADATA and self._advised and str(value).isdigit():
                with self._lock:
                    self.max_in_flight = max(self.max_in_flight, min(int(value), _MAX_ADVISED))
                    self._changed.notify_all()

    def _fail_culprits(self, error: grpc.RpcError) -> None:
        """Fails the request(s) the server rejected: the oldest unacked one (requests are handled in
        order), or, for a message over the server's size limit, every pending request over that limit."""
        with self._lock:
            if not self._pending:
                return
            culprits = [next(iter(self._pending))]
            match = _TOO_LARGE.search(error.details() or "") if status_code(error) else None
            if match is not None:
                limit = int(match.group(2))
                over = [s for s, p in self._pending.items() if len(p.request) > limit]
                if not over and self._sent_packed:  # a packed message was over this server's limit
                    self.pack_bytes, self._packing_allowed = 0, False  # so never pack again; re-send all
                    log.warning("insert stream: packed requests over the server's message limit, packing off",
                                extra={"table": self.table, "limit": limit})
                    return
                culprits = over or culprits
            failed = [self._forget(seq) for seq in culprits]
            self._changed.notify_all()
        exc = error_from_rpc(error, f"insert into {self.table!r}")
        if status_code(error) == grpc.StatusCode.DEADLINE_EXCEEDED:
            exc = InsertTimeout(str(exc), _inserted_keys(error))
        for pending in failed:
            pending.future.set_exception(exc)


def _resolve(acked: list[_Pending], response: replay_pb2.InsertResponse, table: str) -> None:
    """Gives each acknowledged request its share of ``response.keys`` (see ``InsertResponse``)."""
    sizes = list(response.keys_per_request) or [len(response.keys)]
    keys = list(response.keys)
    if len(sizes) != len(acked) or sum(sizes) != len(keys):
        error = UnavailableError(
            f"insert into {table!r}: the server acknowledged {len(sizes)} requests with {len(keys)} keys up to "
            f"sequence id {response.sequence_id}, but {len(acked)} were pending (protocol mismatch)")
        for pending in acked:
            pending.future.set_exception(error)
        return
    start = 0
    for pending, size in zip(acked, sizes):
        pending.future.set_result(keys[start:start + size])
        start += size


def _pack(requests: list[bytes]) -> bytes:
    """One InsertRequest message carrying ``requests`` in its ``packed`` field (one copy of their bytes)."""
    return b"".join([piece for request in requests for piece in (length_delimited(9, len(request)), request)])


def _inserted_keys(error: grpc.RpcError) -> list[int]:
    """Keys of a request that timed out part-way (the servicer's trailing metadata)."""
    metadata = error.trailing_metadata() if callable(getattr(error, "trailing_metadata", None)) else None
    for key, value in metadata or ():
        if key == INSERTED_KEYS_METADATA and value:
            return [int(k) for k in str(value).split(",")]
    return []
