"""The replay service's gRPC face: a thin layer that turns ``herd.v1.ReplayService`` calls into ``Table`` calls.

Where it sits: actors' ``TableClient.insert`` -> ``Insert`` stream -> :meth:`Table.insert`, and
:meth:`Table.sample` -> ``Sample`` stream -> the learner's ``SampleStream``. The tables do the
work (stacking, selectors, rate limiting); this module validates requests, reads and writes the
big messages with ``herd.wire.replay_codec`` (zero-copy views in, kept by the table as they are;
one copy out; tensors validated by ``herd.wire.codec``), waits in short slices so cancelled calls and shutdown never leave a handler
thread blocked, and maps every error to a status code with ``rpc_errors``. Register it with
:func:`add_to_server`.

Delivery is at-least-once: an ``InsertResponse`` is sent only after the items are stored (for a
``durability: wal`` table: after the fsync of the log that covers them), and a client re-sends
what was not acknowledged on a new stream, so an item stored just before its stream broke may be
stored twice (never lost once acknowledged).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Collection, Iterator, Mapping, Optional, Union

import grpc
import numpy as np

from herd.interfaces import RateLimitTimeout, SampledBatch
from herd.v1 import replay_pb2, replay_pb2_grpc
from herd.wire.channel import DEFAULT_MAX_MESSAGE_BYTES
from herd.wire.replay_codec import InsertRequestView, decode_insert, encode_sample_response
from herd.wire.status import FailedPreconditionError, NotFoundError, ResourceExhaustedError, UnavailableError
from herd.wire.status import rpc_errors
from replay_service.wal import WalError
from replay_service.call_state import BlockedCalls, InsertStreams
from replay_service.checkpoint import checkpoint_path
from replay_service.info import table_info
from replay_service.insert_acks import ACK_DELAY_SECONDS, END, AckQueue, Stored, ack_message, last_positions, unpacked
from replay_service.protocol import INSERT_WINDOW_METADATA, INSERTED_KEYS_METADATA, PACKED_INSERTS_METADATA, InsertTimeout
from replay_service.table import Table, TableClosed

log = logging.getLogger(__name__)

SERVICE_NAME = replay_pb2.DESCRIPTOR.services_by_name["ReplayService"].full_name  # herd.v1.ReplayService
WAIT_SLICE_SECONDS = 0.2
"""Longest a handler blocks on a table before re-checking that its call is alive and the server up."""
MAX_BATCH_SIZE = 100_000
"""Largest ``batch_size`` a Sample call may ask for (RESOURCE_EXHAUSTED above)."""
DURABLE_INSERT_WINDOW = 1024
"""The window advised when a table here is durable (wal): its acks wait for the group commit (one fsync
interval plus the fsync, ~10-30 ms), so a stream moves at most a window per commit: 1024 small requests
keep up with ~40,000 requests/s; big ones are bounded by the client's byte window (32 MiB) instead."""
_BATCH_OVERHEAD_BYTES = 4096  # proto framing of a SampleResponse besides tensor bytes and per-item fields
_PER_ITEM_OVERHEAD_BYTES = 24  # one uint64 key + one double probability, with tags


class ReplayServicer(replay_pb2_grpc.ReplayServiceServicer):
    """Serves several named tables over ``herd.v1.ReplayService``."""

    def __init__(
        self,
        tables: Mapping[str, Table],
        *,
        checkpoint_dir: str = "",
        checkpointed: Optional[Collection[str]] = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        wait_slice: float = WAIT_SLICE_SECONDS,
    ) -> None:
        self._tables = dict(tables)
        self._checkpoint_dir = checkpoint_dir
        self._checkpointed = list(self._tables if checkpointed is None else checkpointed)  # not durability none
        self._max_message_bytes = max_message_bytes
        self._slice = wait_slice
        self._streams = InsertStreams()
        self._blocked = BlockedCalls()
        self._item_bytes: dict[str, int] = {}  # bytes of one item per table, once known
        self._checkpoint_lock = threading.Lock()
        self._insert_window = DURABLE_INSERT_WINDOW if any(t.journal is not None for t in self._tables.values()) else 0

    # -- lifecycle (called by main.py) --------------------------------------------------
    def stop(self) -> None:
        """Refuses new work with UNAVAILABLE and ends idle Insert streams (clients reconnect elsewhere/later)."""
        self._streams.stop()

    def checkpoint(self) -> str:
        """Writes every checkpointed table to ``checkpoint_dir/<table>.npz`` atomically; returns the directory."""
        if not self._checkpoint_dir:
            raise FailedPreconditionError("checkpoint: this server has no checkpoint_dir configured")
        directory = os.path.abspath(self._checkpoint_dir)
        with self._checkpoint_lock:
            os.makedirs(directory, exist_ok=True)
            for name in self._checkpointed:
                self._tables[name].checkpoint(checkpoint_path(directory, name))
        return directory

    # -- RPCs ---------------------------------------------------------------------------
    @rpc_errors
    def Insert(
        self, request_iterator: Iterator[replay_pb2.InsertRequest], context: grpc.ServicerContext
    ) -> Iterator[replay_pb2.InsertResponse]:
        # Two threads per stream: a reader receives and stores request k+1 while this handler
        # thread sends the ack of request k, so the ack's round trip is off the critical path.
        # Acks leave in order and only after their items are stored -- for a durable table, after
        # the log's fsync that covers them: this thread waits for it while the reader goes on
        # storing, so requests arriving meanwhile share that fsync (group commit). One message
        # acknowledges every request stored since the last (cumulative acks); requests whose
        # ack_every allows it get one ack per ack_every requests (ACK_DELAY_SECONDS at most).
        acks = AckQueue()
        with self._streams.track(context):
            metadata = [(PACKED_INSERTS_METADATA, "1")]  # the client may pack queued requests (InsertRequest.packed)
            if self._insert_window:  # clients with the default window widen it (replay_service.insert_stream)
                metadata.append((INSERT_WINDOW_METADATA, str(self._insert_window)))
            context.send_initial_metadata(tuple(metadata))
            reader = threading.Thread(target=self._read_inserts, args=(request_iterator, context, acks),
                                      name="insert-reader", daemon=True)
            reader.start()
            end = None
            while end is None:
                stored, end = acks.take(ACK_DELAY_SECONDS)
                if stored:
                    for table, position in last_positions(stored).items():
                        self._wait_durable(table, position, context)
                    yield ack_message(stored)
                    self._streams.acked(context, len(stored))  # runs once gRPC has sent the ack
            if isinstance(end, BaseException):
                self._wait_all_durable(context)  # keys of a partly timed-out insert are acked in its error
                raise end

    def _read_inserts(
        self, requests: Iterator[replay_pb2.InsertRequest], context: grpc.ServicerContext, acks: AckQueue
    ) -> None:
        """The reader of one Insert stream: stores each request's items, queues its ack (or the error)."""
        try:
            for message in requests:
                for part in unpacked(message):
                    self._streams.received(context)
                    request = _insert_view(part)
                    keys = self._insert(request, context)
                    table = self._tables[request.table]
                    acks.put(Stored(request.sequence_id, keys, table, table.log_position, request.ack_every))
            acks.finish(END)
        except BaseException as e:  # noqa: BLE001 - raised again by the handler thread, after earlier acks
            acks.finish(e)

    @rpc_errors
    def Sample(
        self, request: replay_pb2.SampleRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:  # serialized SampleResponses (see add_to_server)
        table = self._table(request.table)
        b = request.batch_size
        if b < 1:
            raise ValueError(f"batch_size: must be >= 1, got {b}")
        if b > MAX_BATCH_SIZE:
            raise ResourceExhaustedError(f"batch_size: {b} is over the limit of {MAX_BATCH_SIZE}")
        timeout = _timeout("timeout_ms", request.timeout_ms)
        self._check_fits(request.table, b)
        sent = 0
        while request.num_batches == 0 or sent < request.num_batches:
            batch = self._sample(table, b, timeout, context)
            # A serialized SampleResponse joined straight from the stacked arrays (one copy).
            message = encode_sample_response(keys=batch.keys, probabilities=batch.probabilities, data=batch.data,
                                             table_size=batch.table_size)
            if len(message) > self._max_message_bytes:  # only before the item size was known
                log.warning("sampled batch dropped: over the message limit",
                            extra={"table": request.table, "bytes": len(message)})
                self._item_bytes.setdefault(request.table, len(message) // b)
                self._check_fits(request.table, b)
            yield message
            sent += 1

    @rpc_errors
    def UpdatePriorities(
        self, request: replay_pb2.UpdatePrioritiesRequest, context: grpc.ServicerContext
    ) -> replay_pb2.UpdatePrioritiesResponse:
        table = self._table(request.table)
        if len(request.keys) != len(request.priorities):
            raise ValueError(
                f"priorities: {len(request.priorities)} values for {len(request.keys)} keys (must be equal)"
            )
        keys = np.asarray(request.keys, dtype=np.uint64)
        updated = table.update_priorities(keys, np.asarray(request.priorities, dtype=np.float64))
        return replay_pb2.UpdatePrioritiesResponse(num_updated=updated)

    @rpc_errors
    def Info(self, request: replay_pb2.InfoRequest, context: grpc.ServicerContext) -> replay_pb2.InfoResponse:
        names = list(request.tables) or list(self._tables)
        tables = [self._table(name) for name in names]  # NOT_FOUND before any work
        return replay_pb2.InfoResponse(tables=[
            table_info(t.info(), self._blocked.count(t.name, "insert"), self._blocked.count(t.name, "sample"))
            for t in tables
        ])

    @rpc_errors
    def Checkpoint(
        self, request: replay_pb2.CheckpointRequest, context: grpc.ServicerContext
    ) -> replay_pb2.CheckpointResponse:
        return replay_pb2.CheckpointResponse(path=self.checkpoint())

    # -- helpers ------------------------------------------------------------------------
    def _table(self, name: str) -> Table:
        if not name:
            raise ValueError("table: a table name is required")
        table = self._tables.get(name)
        if table is None:
            raise NotFoundError(f"table: no table named {name!r} (this server has {sorted(self._tables)})")
        return table

    def _insert(self, request: InsertRequestView, context: grpc.ServicerContext) -> list[int]:
        """Validates one InsertRequest and stores its items; returns their keys."""
        table = self._table(request.table)
        timeout = _timeout("timeout_ms", request.timeout_ms)
        # Read-only views of the received bytes, validated (WireError names the tensor); the table keeps them.
        items = request.arrays if request.arrays is not None else {
            name: raw.decode(name) for name, raw in request.items.items()}
        n = request.num_items
        if not items:
            raise ValueError("items: no tensors in the request")
        if n < 1:
            raise ValueError(f"num_items: must be >= 1, got {n}")
        for name, array in items.items():
            if array.ndim < 2 or array.shape[1] != n:
                raise ValueError(
                    f"num_items: {n}, but tensor {name!r} has shape {list(array.shape)} "
                    "(items are stacked at axis 1: [T, N, ...])"
                )
        priorities: Optional[np.ndarray] = None
        if len(request.priorities):
            if len(request.priorities) != n:
                raise ValueError(f"priorities: {len(request.priorities)} values for {n} items (must be 0 or {n})")
            priorities = np.asarray(request.priorities, dtype=np.float64)
        keys = self._insert_waiting(table, items, priorities, timeout, context)
        if request.table not in self._item_bytes:
            self._item_bytes[request.table] = sum(a.nbytes for a in items.values()) // n
        return keys

    def _insert_waiting(
        self,
        table: Table,
        items: dict[str, np.ndarray],
        priorities: Optional[np.ndarray],
        timeout: Optional[float],
        context: grpc.ServicerContext,
    ) -> list[int]:
        """``table.insert`` in slices of ``wait_slice``, re-checking the call between them."""
        deadline = None if timeout is None else time.monotonic() + timeout
        keys: list[int] = []
        with self._blocked.waiting(table.name, "insert") as blocked:
            while True:
                done = len(keys)
                rest = items if not done else {k: v[:, done:] for k, v in items.items()}
                try:
                    keys += table.insert(rest, None if priorities is None else priorities[done:],
                                         timeout=self._wait_time(deadline))
                    return keys
                except InsertTimeout as e:
                    keys += e.keys
                except TableClosed as e:
                    raise UnavailableError(f"table {table.name!r} is closed (server shutting down)") from e
                except WalError as e:  # the log cannot take more: clients re-send after a restart
                    raise UnavailableError(f"table {table.name!r}: {e}") from e
                if deadline is not None and time.monotonic() >= deadline:
                    context.set_trailing_metadata(((INSERTED_KEYS_METADATA, ",".join(map(str, keys))),))
                    total = next(iter(items.values())).shape[1]
                    raise InsertTimeout(
                        f"table {table.name!r}: insert timed out after {timeout}s on the rate limiter "
                        f"with {len(keys)} of {total} items inserted",
                        keys,
                    )
                self._check_alive(context)
                blocked()

    def _sample(
        self, table: Table, b: int, timeout: Optional[float], context: grpc.ServicerContext
    ) -> SampledBatch:
        """``table.sample`` in slices of ``wait_slice``, re-checking the call between them."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._blocked.waiting(table.name, "sample") as blocked:
            while True:
                try:
                    return table.sample(b, timeout=self._wait_time(deadline))
                except TableClosed as e:
                    raise UnavailableError(f"table {table.name!r} is closed (server shutting down)") from e
                except WalError as e:  # the log cannot take more: clients re-send after a restart
                    raise UnavailableError(f"table {table.name!r}: {e}") from e
                except RateLimitTimeout:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise RateLimitTimeout(
                            f"table {table.name!r}: no batch of {b} within {timeout}s (rate limiter)"
                        ) from None
                self._check_alive(context)
                blocked()

    def _wait_durable(self, table: Table, position: int, context: grpc.ServicerContext) -> None:
        """Returns once ``table``'s log is fsynced up to ``position`` (at once for other tables)."""
        try:
            while not table.wait_durable(position, self._slice):
                self._check_alive(context)
        except WalError as e:
            raise UnavailableError(f"table {table.name!r}: {e}") from e

    def _wait_all_durable(self, context: grpc.ServicerContext) -> None:
        for table in self._tables.values():
            self._wait_durable(table, table.log_position, context)

    def _wait_time(self, deadline: Optional[float]) -> float:
        if deadline is None:
            return self._slice
        return max(0.0, min(self._slice, deadline - time.monotonic()))

    def _check_alive(self, context: grpc.ServicerContext) -> None:
        if self._streams.stopping:
            raise UnavailableError("replay server is shutting down")
        if not context.is_active():
            raise UnavailableError("call cancelled by the client")  # rpc_errors drops it: nobody listens

    def _check_fits(self, table: str, b: int) -> None:
        item = self._item_bytes.get(table)
        if item is None:
            return
        need = b * (item + _PER_ITEM_OVERHEAD_BYTES) + _BATCH_OVERHEAD_BYTES
        if need > self._max_message_bytes:
            raise ResourceExhaustedError(
                f"batch_size: {b} items of {item} bytes need ~{need} bytes, over the "
                f"{self._max_message_bytes}-byte message limit"
            )


def _insert_view(message: Union[bytes, replay_pb2.InsertRequest]) -> InsertRequestView:
    """An Insert request as raw bytes (from :func:`add_to_server`) or a generated message, parsed."""
    if not isinstance(message, bytes):
        message = message.SerializeToString()  # registered by the generated code: tests, tools
    return decode_insert(message)


def add_to_server(servicer: ReplayServicer, server: grpc.Server) -> None:
    """Registers ``servicer`` as ``herd.v1.ReplayService``, Insert requests and Sample responses as raw bytes.

    Use this, not the generated ``add_ReplayServiceServicer_to_server``: the big messages are
    (de)serialized by ``herd.wire.replay_codec`` in the servicer, without the generated classes' copies.
    """
    pb = replay_pb2
    handlers = {
        "Insert": grpc.stream_stream_rpc_method_handler(
            servicer.Insert, request_deserializer=None, response_serializer=pb.InsertResponse.SerializeToString),
        "Sample": grpc.unary_stream_rpc_method_handler(
            servicer.Sample, request_deserializer=pb.SampleRequest.FromString, response_serializer=None),
        "UpdatePriorities": grpc.unary_unary_rpc_method_handler(
            servicer.UpdatePriorities, request_deserializer=pb.UpdatePrioritiesRequest.FromString,
            response_serializer=pb.UpdatePrioritiesResponse.SerializeToString),
        "Info": grpc.unary_unary_rpc_method_handler(
            servicer.Info, request_deserializer=pb.InfoRequest.FromString,
            response_serializer=pb.InfoResponse.SerializeToString),
        "Checkpoint": grpc.unary_unary_rpc_method_handler(
            servicer.Checkpoint, request_deserializer=pb.CheckpointRequest.FromString,
            response_serializer=pb.CheckpointResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def _timeout(field: str, ms: int) -> Optional[float]:
    """A request's ``*_ms`` wait limit in seconds; ``None`` for 0 (no limit)."""
    if ms < 0:
        raise ValueError(f"{field}: must be >= 0 (0 = no limit), got {ms}")
    return ms / 1000.0 if ms else None
