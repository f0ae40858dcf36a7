"""The learner side of the ``Sample`` stream: batches prefetched in the background, decoded without copies.

Where it sits: the learner builds ``SampleStream(replay.table(name), batch_size, prefetch=1,
batches_per_call=1)`` as its ``BatchSource`` and calls :meth:`SampleStream.sample` once per
update: it is the learner's one sampling path. A background thread keeps a ``Sample`` call
open and fills a bounded queue of decoded batches. On a broken connection it reconnects with
backoff (0.1 s doubling to 5 s); a bad request (unknown table, bad batch size) is raised from
:meth:`next`.

How far ahead it samples: with ``batches_per_call=0`` (one endless call, the fastest) the server
keeps sampling while gRPC's flow-control window has room, and that window grows to megabytes on
a fast link: measured on loopback, ~500 batches of 10 KiB but only ~5 of 2.6 MiB were taken out
of a queue table ahead of a consumer that had stopped. Those items age in transit (policy lag)
and are lost if the connection breaks. ``batches_per_call=N`` bounds it to ``prefetch + N``
batches with back-to-back calls of ``N`` batches, at the price of a pipeline bubble per call
(B=32 of 64 KiB items: ~40% of the throughput with N=2). A hard bound at full speed needs the
client to grant the server credits, which the server-streaming ``Sample`` cannot express.

Batches hold read-only numpy views over the received message (``herd.wire.replay_codec``, no copy):
the learner copies them into torch tensors anyway. ``stage``, if given, runs on each decoded
batch in the same thread, before it is queued: a learner on a GPU passes
``herd.agents.torch_util.pin_batch`` so the copy into pinned memory overlaps its update too.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import grpc
import numpy as np

from herd.interfaces import RateLimitTimeout, SampledBatch
from herd.v1 import replay_pb2
from herd.wire.replay_codec import decode_sample_response
from herd.wire.status import UnavailableError
from replay_service.reconnect import CONNECTION_CODES, Backoff, error_from_rpc, status_code

if TYPE_CHECKING:
    from replay_service.client import TableClient

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.1  # how often blocked puts/gets re-check for close and errors


def decode_batch(message: bytes) -> SampledBatch:
    """A serialized ``SampleResponse`` as a ``SampledBatch`` of read-only ``[T, B, ...]`` views over it."""
    response = decode_sample_response(message)
    return SampledBatch(
        keys=np.array(response.keys, dtype=np.uint64),
        probabilities=np.array(response.probabilities, dtype=np.float64),
        data={name: raw.decode(name) for name, raw in response.data.items()},
        table_size=response.table_size,
    )


class SampleStream:
    """Prefetches batches of ``batch_size`` items from one table over Sample calls of ``batches_per_call``
    batches each (0: one endless call); ``prefetch`` decoded batches wait in the queue."""

    def __init__(self, table: "TableClient", batch_size: int, prefetch: int = 2, batches_per_call: int = 0,
                 stage: Optional[Callable[[SampledBatch], SampledBatch]] = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch: expected an integer >= 1, got {prefetch!r}")
        if isinstance(batches_per_call, bool) or not isinstance(batches_per_call, int) or batches_per_call < 0:
            raise ValueError(f"batches_per_call: expected an integer >= 0, got {batches_per_call!r}")
        self.batches_per_call = batches_per_call
        self.stage = stage  # runs on every decoded batch in the prefetch thread
        self.table = table.name
        self.batch_size = batch_size
        self._sample = table.sample_raw
        self._table_client = table
        self._batches: queue.Queue[SampledBatch] = queue.Queue(maxsize=prefetch)
        self._lock = threading.Lock()
        self._call: Optional[grpc.Future] = None
        self._error: Optional[Exception] = None
        self._closed = threading.Event()
        self.reconnects = 0
        self._thread = threading.Thread(target=self._run, name=f"sample-{self.table}", daemon=True)
        self._thread.start()
        table.client.track(self)

    def next(self, timeout: Optional[float] = None) -> SampledBatch:
        """The next batch; waits up to ``timeout`` seconds (``None``: forever), else ``RateLimitTimeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
            try:
                return self._batches.get(timeout=max(wait, 0.0))
            except queue.Empty:
                pass
            if self._error is not None:
                raise self._error
            if self._closed.is_set():
                raise UnavailableError(f"sample stream of {self.table!r} is closed")
            if deadline is not None and time.monotonic() >= deadline:
                raise RateLimitTimeout(f"no batch of {self.batch_size} from table {self.table!r} within {timeout}s")

    # -- the learner's BatchSource (herd.interfaces) ----------------------------------------

    def sample(self, batch_size: int, timeout: Optional[float] = None) -> SampledBatch:
        """The next prefetched batch (``batch_size`` must be the stream's)."""
        if batch_size != self.batch_size:
            raise ValueError(f"batch_size: this stream samples {self.batch_size} items, asked for {batch_size}")
        return self.next(timeout)

    def update_priorities(self, keys, priorities) -> None:
        """Sets priorities of sampled items in the table the stream samples from."""
        self._table_client.update_priorities(keys, priorities)

    def __iter__(self) -> Iterator[SampledBatch]:
        return self

    def __next__(self) -> SampledBatch:
        return self.next()

    def close(self) -> None:
        """Cancels the stream and stops the thread (prefetched batches are dropped)."""
        self._closed.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "SampleStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        backoff = Backoff()
        per_call = self.batches_per_call
        request = replay_pb2.SampleRequest(table=self.table, batch_size=self.batch_size, num_batches=per_call)
        while not self._closed.is_set():
            try:
                call = self._sample(request)  # no deadline: waits on the rate limiter as long as it takes
            except ValueError as e:  # the channel was closed under us
                self._error = UnavailableError(f"sample from {self.table!r}: channel closed ({e})")
                return
            with self._lock:
                self._call = call
            if self._closed.is_set():
                call.cancel()
            code, received = None, 0
            try:
                for message in call:
                    backoff.reset()
                    received += 1
                    try:
                        batch = decode_batch(message)
                    except ValueError as e:  # a malformed batch: a bug on the server, not a network blip
                        self._error = e
                        call.cancel()
                        return
                    if self.stage is not None:
                        try:
                            batch = self.stage(batch)
                        except Exception as e:  # noqa: BLE001 - raised from next(), not lost with the thread
                            self._error = e
                            call.cancel()
                            return
                    if not self._put(batch):
                        return
            except grpc.RpcError as e:
                if self._closed.is_set():
                    return
                code = status_code(e)
                if code not in CONNECTION_CODES:
                    self._error = error_from_rpc(e, f"sample from {self.table!r}")
                    return
            else:
                if per_call and received == per_call:
                    continue  # all delivered: the next call at once
            self.reconnects += 1
            pause = backoff.next()
            log.warning(
                "sample stream broken, reconnecting",
                extra={"table": self.table, "code": code.name if code else "OK", "sleep_seconds": round(pause, 3)},
            )
            self._closed.wait(pause)

    def _put(self, batch: SampledBatch) -> bool:
        """Blocks while the queue is full (back-pressure on the stream); False once closed."""
        while not self._closed.is_set():
            try:
                self._batches.put(batch, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                pass
        return False
