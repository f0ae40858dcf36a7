"""How actors and the learner reach a replay server: ``ReplayClient(address).table(name)``.

Where it sits: an actor's unrolls go ``TableClient.insert`` / ``insert_async`` -> the ``Insert``
stream (``insert_stream``) -> ``replay_service.servicer`` -> ``Table``; the learner's batches come
back through :class:`SampleStream` (prefetching) or :meth:`TableClient.sample`. A ``TableClient``
satisfies ``herd.interfaces.TrajectoryWriter`` and ``BatchSource``, like the in-process ``Table``,
so the actor loop and the learner run unchanged against either, and raises the same exceptions
(``ValueError`` for bad items, ``RateLimitTimeout`` when the rate limiter holds a call too long).

Inserts survive server restarts (re-sent after reconnecting, at-least-once); ``sample`` retries a
broken connection until its timeout; unary calls carry a deadline (``timeout``, 10 s by default).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import threading
import time
import weakref
from collections import abc
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

import grpc
import numpy as np

from herd.interfaces import RateLimitTimeout, SampledBatch
from herd.options import SecurityOptions
from herd.v1 import replay_pb2, replay_pb2_grpc
from herd.wire.channel import DEFAULT_MAX_MESSAGE_BYTES, make_channel
from herd.wire.replay_codec import encode_insert_request
from herd.wire.status import ResourceExhaustedError
from replay_service.insert_stream import DEFAULT_IN_FLIGHT_BYTES, InsertStream
from replay_service.reconnect import CONNECTION_CODES, Backoff, error_from_rpc, status_code
from replay_service.sample_stream import SampleStream, decode_batch

__all__ = ["RemoteTableInfo", "ReplayClient", "SampleStream", "TableClient"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0
"""Deadline of every unary call, in seconds."""
_ACK_GRACE_SECONDS = 0.5  # insert() waits this much past its timeout for the server's own verdict
SERVICE = replay_pb2.DESCRIPTOR.services_by_name["ReplayService"].full_name


@dataclasses.dataclass(frozen=True)
class RemoteTableInfo:
    """One table as ``Info`` reports it (``herd.v1.TableInfo``); ``rate_limiter`` holds ``RateLimiterInfo``'s fields."""

    name: str
    size: int
    max_size: int
    max_times_sampled: int
    num_inserts: int
    num_samples: int
    num_deletes: int
    sampler: str
    remover: str
    priority_exponent: float
    rate_limiter: dict[str, Any]

    @classmethod
    def from_proto(cls, info: replay_pb2.TableInfo) -> "RemoteTableInfo":
        limiter = {f.name: getattr(info.rate_limiter, f.name) for f in info.rate_limiter.DESCRIPTOR.fields}
        scalars = {f.name: getattr(info, f.name) for f in info.DESCRIPTOR.fields if f.name != "rate_limiter"}
        return cls(rate_limiter=limiter, **scalars)


class ReplayClient:
    """A channel to one replay server; :meth:`table` gives per-table clients sharing it."""

    def __init__(
        self,
        address: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: Optional[int] = None,
        max_in_flight_bytes: int = DEFAULT_IN_FLIGHT_BYTES,
        security: Optional[SecurityOptions] = None,
    ) -> None:
        """``security``: TLS and the token for the channel (``herd.options.SecurityOptions``).

        ``max_in_flight``: unacknowledged inserts per table client; ``None``: 32, or the larger
        window the server advises for durable (``wal``) tables (``replay_service.insert_stream``);
        ``max_in_flight_bytes`` (32 MiB) bounds their bytes too.
        """
        if not timeout > 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {timeout}")
        self.address = address
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.max_in_flight_bytes = max_in_flight_bytes
        self._channel = make_channel(address, max_message_bytes=max_message_bytes, security=security)
        self.stub = replay_pb2_grpc.ReplayServiceStub(self._channel)
        # The big messages travel as bytes serialized by herd.wire.replay_codec (one copy out, none in).
        self.insert_raw = self._channel.stream_stream(
            f"/{SERVICE}/Insert", request_serializer=None,
            response_deserializer=replay_pb2.InsertResponse.FromString, _registered_method=True)
        self.sample_raw = self._channel.unary_stream(
            f"/{SERVICE}/Sample", request_serializer=replay_pb2.SampleRequest.SerializeToString,
            response_deserializer=None, _registered_method=True)
        self._tables: dict[str, TableClient] = {}
        self._sample_streams: weakref.WeakSet[SampleStream] = weakref.WeakSet()  # closed with the client
        self._lock = threading.Lock()

    def table(self, name: str) -> "TableClient":
        """The client of table ``name`` (one per name; its insert stream is shared by its callers)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"table: expected a non-empty name, got {name!r}")
        with self._lock:
            if name not in self._tables:
                self._tables[name] = TableClient(self, name, max_in_flight=self.max_in_flight)
            return self._tables[name]

    def info(self, tables: Sequence[str] = ()) -> list[RemoteTableInfo]:
        """Size, counters and rate-limiter state of ``tables`` (default: every table on the server)."""
        response = self.call("Info", self.stub.Info, replay_pb2.InfoRequest(tables=list(tables)))
        return [RemoteTableInfo.from_proto(t) for t in response.tables]

    def checkpoint(self) -> str:
        """Has the server checkpoint every table; returns where (a directory on the server)."""
        return self.call("Checkpoint", self.stub.Checkpoint, replay_pb2.CheckpointRequest()).path

    def call(self, what: str, method: Callable[..., T], request: Any) -> T:
        """A unary call with the client's deadline; failures raised as the matching Python exception."""
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise error_from_rpc(e, what) from e

    def close(self, timeout: float = 5.0) -> None:
        """Waits up to ``timeout`` for unacknowledged inserts, then closes every stream and the channel."""
        with self._lock:
            tables, self._tables = list(self._tables.values()), {}
            streams = list(self._sample_streams)
        for stream in streams:
            stream.close()
        for table in tables:
            table.close(timeout)
        self._channel.close()

    def track(self, stream: SampleStream) -> None:
        """Closes ``stream`` (a SampleStream on this client's channel) when the client closes."""
        with self._lock:
            self._sample_streams.add(stream)

    def __enter__(self) -> "ReplayClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TableClient:
    """One table of a replay server: ``TrajectoryWriter`` and ``BatchSource`` over gRPC."""

    def __init__(self, client: ReplayClient, name: str, *, max_in_flight: Optional[int] = None) -> None:
        self.name = name
        self.client = client
        self.stub = client.stub
        self.sample_raw = client.sample_raw
        self._inserts = InsertStream(client.insert_raw, name, max_in_flight, client.max_in_flight_bytes)

    # -- TrajectoryWriter ----------------------------------------------------------------
    def insert_async(
        self,
        items: Mapping[str, np.ndarray],
        priorities: Optional[Sequence[float] | np.ndarray] = None,
        timeout: Optional[float] = None,
    ) -> "concurrent.futures.Future[list[int]]":
        """Encodes ``N`` items given ``[T, N, ...]`` and sends them; the future gives their keys on ack.

        The arrays are copied into the request before this returns (the caller may reuse them).
        Blocks while ``max_in_flight`` requests are unacknowledged (up to ``timeout``).
        ``timeout`` also bounds the server's wait on the rate limiter. On a busy stream the server
        may acknowledge a quarter of the window at once, so a future may resolve up to ~1 ms
        (``servicer.ACK_DELAY_SECONDS``) after its items are stored; ``insert`` never waits that.
        """
        return self._submit(items, priorities, timeout, waited_on=False)

    def insert(
        self,
        items: Mapping[str, np.ndarray],
        priorities: Optional[Sequence[float] | np.ndarray] = None,
        timeout: Optional[float] = None,
    ) -> list[int]:
        """Inserts ``N`` items given ``[T, N, ...]``; returns their keys once the server stored them.

        Waits through reconnects; raises only after ``timeout`` seconds (``None``: never):
        ``InsertTimeout`` (a ``RateLimitTimeout``) if the server's rate limiter held the items,
        ``RateLimitTimeout`` if no answer came. Bad items raise ``ValueError`` (``NotFoundError``
        for an unknown table) as ``Table.insert`` does.
        """
        deadline = None if timeout is None else time.monotonic() + timeout + _ACK_GRACE_SECONDS
        future = self._submit(items, priorities, timeout, waited_on=True)  # acked at once, not with later ones
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        concurrent.futures.wait([future], timeout=remaining)
        if not future.done():
            self._inserts.abandon(future)  # not re-sent after a reconnect; may still be stored once
            raise RateLimitTimeout(f"insert into {self.name!r}: no acknowledgement within {timeout}s")
        return future.result()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every insert sent so far is acknowledged or failed; False on timeout."""
        return self._inserts.flush(timeout)

    @property
    def in_flight(self) -> int:
        """Inserts sent but not yet acknowledged."""
        return self._inserts.in_flight()

    @property
    def reconnects(self) -> int:
        """How often the insert stream was re-opened after a broken connection."""
        return self._inserts.reconnects

    # -- BatchSource ---------------------------------------------------------------------
    def sample(self, batch_size: int, timeout: Optional[float] = None) -> SampledBatch:
        """One batch of ``batch_size`` items ``[T, B, ...]`` (read-only arrays), over a one-batch Sample call.

        Waits on the rate limiter and through reconnects up to ``timeout`` seconds (``None``:
        forever), then raises ``RateLimitTimeout``. For a steady supply use :meth:`sample_stream`.
        """
        request = replay_pb2.SampleRequest(table=self.name, batch_size=batch_size, num_batches=1)
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff()
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise RateLimitTimeout(f"sample from {self.name!r}: no batch of {batch_size} within {timeout}s")
            request.timeout_ms = 0 if remaining is None else max(1, math.ceil(remaining * 1000))
            # The RPC deadline trails the server's own wait, so its DEADLINE_EXCEEDED (with its message) wins.
            call = self.sample_raw(request, timeout=None if remaining is None else remaining + 1.0)
            try:
                for response in call:
                    return decode_batch(response)
            except grpc.RpcError as e:
                if status_code(e) not in CONNECTION_CODES:
                    raise error_from_rpc(e, f"sample from {self.name!r}") from e
            pause = backoff.next()
            time.sleep(pause if remaining is None else max(0.0, min(pause, deadline - time.monotonic())))

    def sample_stream(self, batch_size: int, prefetch: int = 2, batches_per_call: int = 0) -> SampleStream:
        """A prefetching stream of batches (see :class:`SampleStream` for how far ahead it samples)."""
        return SampleStream(self, batch_size, prefetch, batches_per_call)

    def update_priorities(self, keys: Sequence[int] | np.ndarray, priorities: Sequence[float] | np.ndarray) -> int:
        """Sets new priorities for sampled items (unknown keys ignored); returns how many were still stored."""
        request = replay_pb2.UpdatePrioritiesRequest(
            table=self.name,
            keys=np.asarray(keys, dtype=np.uint64).reshape(-1).tolist(),
            priorities=np.asarray(priorities, dtype=np.float64).reshape(-1).tolist(),
        )
        return self.client.call("UpdatePriorities", self.stub.UpdatePriorities, request).num_updated

    def info(self) -> RemoteTableInfo:
        """This table's size, counters and rate-limiter state."""
        return self.client.info([self.name])[0]

    def checkpoint(self) -> str:
        """Has the server checkpoint every table (this one included); returns where."""
        return self.client.checkpoint()

    def close(self, timeout: float = 5.0) -> None:
        """Waits up to ``timeout`` for unacknowledged inserts, then ends the insert stream."""
        self._inserts.close(timeout)

    def _submit(
        self,
        items: Mapping[str, np.ndarray],
        priorities: Optional[Sequence[float] | np.ndarray],
        timeout: Optional[float],
        *,
        waited_on: bool,
    ) -> "concurrent.futures.Future[list[int]]":
        encode, nbytes = self._encoder(items, priorities, timeout)
        return self._inserts.submit(encode, timeout, waited_on=waited_on, nbytes=nbytes)

    def _encoder(
        self,
        items: Mapping[str, np.ndarray],
        priorities: Optional[Sequence[float] | np.ndarray],
        timeout: Optional[float],
    ) -> tuple[Callable[[int, int], bytes], int]:
        """Checks ``[T, N, ...]`` items; returns ``(sequence_id, ack_every) -> serialized InsertRequest``
        (one copy) and about how many bytes that is."""
        if not isinstance(items, abc.Mapping) or not items:
            raise ValueError("items: expected a non-empty mapping field name -> [T, N, ...] array")
        n = None
        nbytes = 0
        for name, value in items.items():
            shape = np.shape(value)
            nbytes += getattr(value, "nbytes", 0)  # arrays (what writers send); others are counted at encoding
            if len(shape) < 2:
                raise ValueError(f"field {name!r}: expected a [T, N, ...] array, got shape {shape}")
            if n is not None and shape[1] != n:
                raise ValueError(f"field {name!r}: N = {shape[1]} items, but the first field has N = {n}")
            n = shape[1]
        timeout_ms = 0
        if timeout is not None:
            if timeout < 0:
                raise ValueError(f"timeout: must be >= 0 seconds, got {timeout}")
            timeout_ms = max(1, math.ceil(timeout * 1000))
        prios = None if priorities is None else np.asarray(priorities, dtype=np.float64).reshape(-1)
        limit = self.client.max_message_bytes

        def encode(sequence_id: int, ack_every: int) -> bytes:
            message = encode_insert_request(table=self.name, items=items, num_items=int(n), sequence_id=sequence_id,
                                            priorities=prios, timeout_ms=timeout_ms, ack_every=ack_every)
            if len(message) > limit:
                raise ResourceExhaustedError(
                    f"insert into {self.name!r}: {len(message)} bytes is over the {limit}-byte message limit "
                    "(insert fewer items per call)"
                )
            return message

        return encode, nbytes
