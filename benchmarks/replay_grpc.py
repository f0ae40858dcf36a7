"""Replay over gRPC vs a bare gRPC echo of the same payloads (DESIGN.md §8: replay >= 80% of echo).

Prints items/s and MB/s (MB = 2**20 bytes), in ONE run, for:
  (a) a bare gRPC echo: bytes in, 8-byte ack out per message over one bidi stream, the client
      keeping ``--in-flight`` messages unacknowledged (exactly how the replay Insert stream works),
      with 1 and 8 items (64 KiB each) per message; and a bare server stream of B-item messages;
  (b) replay Insert through ``ReplayClient`` (``insert_async``, same window) into a uniform table
      that evicts its oldest item (so inserts never wait on a learner), 1 and 8 items per request;
  (c) replay Sample of B-item batches through ``SampleStream`` from that (full) table;
and the ratio replay / echo for each. Servers run in their own processes (as in a deployment), so
client and server each have their own interpreter. Run: ``python benchmarks/replay_grpc.py``.

What separates replay from echo (2 cores, both processes CPU-bound): the echo's server handles
one message at a time in one thread, so a window wider than a few messages does not help it;
the replay stores request k+1 while the ack of request k is on its way, acknowledges several
requests per message (``InsertRequest.ack_every``) and, when requests queue behind a slow send,
its client packs up to a quarter of the window into one message (``InsertRequest.packed``). Per
request it does Python work the echo does not (joining the request from the arrays, checking it
against a remembered layout, ``Table.insert``: ~25 us for one 64 KiB item), and the table keeps
what it receives (256 items here) where the echo reuses one hot buffer. Sampling moves ~2 MiB per
message, so the fixed Python costs matter less there.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import queue
import statistics
import sys
import threading
import time
from concurrent import futures
from typing import Callable, Iterator

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402

from herd.wire.channel import make_channel, server_options  # noqa: E402
from replay_service.insert_stream import DEFAULT_IN_FLIGHT  # noqa: E402

ITEM_BYTES = 64 * 1024
ECHO_SERVICE = "bench.Echo"
_END = object()


# ---------------------------------------------------------------------------- payloads
def make_items(t: int, n: int) -> dict[str, np.ndarray]:
    """``n`` items of ``t`` steps, ~64 KiB each: float32 observation [t, n, 780] plus small per-step fields."""
    small = t * (1 + 4 + 4 + 8)
    obs = (ITEM_BYTES - small) // (4 * t)
    rng = np.random.default_rng(0)
    return {
        "observation": rng.random((t, n, obs), dtype=np.float32),
        "step_type": np.ones((t, n), np.uint8),
        "reward": np.zeros((t, n), np.float32),
        "discount": np.ones((t, n), np.float32),
        "action": np.zeros((t, n), np.int64),
    }


def item_bytes(items: dict[str, np.ndarray]) -> int:
    return int(sum(v.nbytes for v in items.values()) // next(iter(items.values())).shape[1])


# ---------------------------------------------------------------------------- servers (own processes)
def _echo_server(ready: "mp.Queue[int]", stop: "mp.Event", batch_bytes: int) -> None:
    def echo(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for i, _payload in enumerate(requests):
            yield i.to_bytes(8, "little")

    payload = os.urandom(batch_bytes)

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        while context.is_active():
            yield payload

    handler = grpc.method_handlers_generic_handler(ECHO_SERVICE, {
        "Echo": grpc.stream_stream_rpc_method_handler(echo),  # bytes in, bytes out: no (de)serializers
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    })
    server = grpc.server(futures.ThreadPoolExecutor(8), options=server_options())
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    ready.put(port)
    stop.wait()
    server.stop(0)


def _replay_server(ready: "mp.Queue[int]", stop: "mp.Event", pool_size: int) -> None:
    from replay_service.config import ReplayServiceConfig, TableConfig
    from replay_service.main import serve

    config = ReplayServiceConfig(tables=(TableConfig.uniform_replay("uniform", pool_size),))
    event = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), event.set()), daemon=True).start()
    serve(config, stop_event=event, on_ready=ready.put)


def start(target: Callable[..., None], *args: object) -> tuple[mp.Process, "mp.Event", int]:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=target, args=(ready, stop, *args), daemon=True)
    proc.start()
    return proc, stop, ready.get(timeout=60)


# ---------------------------------------------------------------------------- clients
def echo_bidi(address: str, payload: bytes, in_flight: int, seconds: float) -> int:
    """Messages acknowledged in ``seconds`` with at most ``in_flight`` unacknowledged (like InsertStream)."""
    channel = make_channel(address)
    call_echo = channel.stream_stream(f"/{ECHO_SERVICE}/Echo")
    window = threading.Semaphore(in_flight)
    outgoing: queue.SimpleQueue = queue.SimpleQueue()
    stop_at = [0.0]
    acked = [0]

    def requests() -> Iterator[bytes]:
        while (message := outgoing.get()) is not _END:
            yield message

    def feed() -> None:
        while time.monotonic() < stop_at[0]:
            window.acquire()
            outgoing.put(payload)
        outgoing.put(_END)

    responses = call_echo(requests())
    stop_at[0] = time.monotonic() + seconds
    feeder = threading.Thread(target=feed)
    feeder.start()
    start_t = time.monotonic()
    for _ack in responses:
        acked[0] += 1
        window.release()
    elapsed = time.monotonic() - start_t
    feeder.join()
    channel.close()
    return int(acked[0] * seconds / elapsed)


def echo_stream(address: str, seconds: float) -> int:
    """Messages received in ``seconds`` from a bare server stream."""
    channel = make_channel(address)
    call = channel.unary_stream(f"/{ECHO_SERVICE}/Stream")(b"")
    count, stop_at = 0, time.monotonic() + seconds
    for _message in call:
        count += 1
        if time.monotonic() >= stop_at:
            break
    call.cancel()
    channel.close()
    return count


def replay_insert(address: str, items: dict[str, np.ndarray], in_flight: int, seconds: float) -> int:
    """Items acknowledged in ``seconds`` via ``insert_async`` into a full uniform table (evicting, never blocking)."""
    from replay_service.client import ReplayClient

    client = ReplayClient(address, max_in_flight=in_flight)
    table = client.table("uniform")
    n = next(iter(items.values())).shape[1]
    done: collections.deque = collections.deque()
    count, stop_at = 0, time.monotonic() + seconds
    t0 = time.monotonic()
    while time.monotonic() < stop_at:
        done.append(table.insert_async(items))  # blocks while in_flight requests are unacknowledged
        while done and done[0].done():
            done.popleft().result()
            count += n
    for f in done:
        f.result()
        count += n
    elapsed = time.monotonic() - t0
    client.close()
    return int(count * seconds / elapsed)


def replay_sample(address: str, batch: int, seconds: float) -> int:
    """Items received in ``seconds`` of batches from the (full) uniform table through ``SampleStream``."""
    from replay_service.client import ReplayClient, SampleStream

    client = ReplayClient(address)
    table = client.table("uniform")  # already full from the insert phases
    stream = SampleStream(table, batch, prefetch=2)
    stream.next(timeout=30)  # warm up
    count, t0 = 0, time.monotonic()
    while time.monotonic() < t0 + seconds:
        count += len(stream.next(timeout=30).keys)
    elapsed = time.monotonic() - t0
    stream.close()
    client.close()
    return int(count * seconds / elapsed)


def report(label: str, items_per_s: float, size: int, baseline: float | None = None) -> None:
    ratio = f"  {items_per_s / baseline:6.1%} of echo" if baseline else ""
    print(f"{label:<40} {items_per_s:>9,.0f} items/s {items_per_s * size / 2**20:>8,.1f} MB/s{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.6, help="duration of each phase in each round")
    parser.add_argument("--rounds", type=int, default=4, help="echo and replay phases alternate this often; medians")
    parser.add_argument("--unroll", type=int, default=21, help="T + 1, steps per item")
    parser.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT,
                        help=f"unacknowledged messages per stream, echo and replay alike "
                             f"(default {DEFAULT_IN_FLIGHT}: ReplayClient's default window)")
    parser.add_argument("--batch", type=int, default=32, help="B, items per sampled batch")
    args = parser.parse_args()
    one, eight = make_items(args.unroll, 1), make_items(args.unroll, 8)
    size = item_bytes(one)
    print(f"item {size} bytes (T+1={args.unroll}), in flight {args.in_flight}, sample B={args.batch}; "
          f"median of {args.rounds} alternating rounds of {args.seconds}s", flush=True)
    echo_proc, echo_stop, echo_port = start(_echo_server, size * args.batch)
    replay_proc, replay_stop, replay_port = start(_replay_server, 256)
    echo_addr, replay_addr = f"127.0.0.1:{echo_port}", f"127.0.0.1:{replay_port}"
    secs, window = args.seconds, args.in_flight
    phases: dict[str, Callable[[], float]] = {  # items per second of each phase
        "echo1": lambda: echo_bidi(echo_addr, os.urandom(size), window, secs) / secs,
        "insert1": lambda: replay_insert(replay_addr, one, window, secs) / secs,
        "echo8": lambda: 8 * echo_bidi(echo_addr, os.urandom(size * 8), window, secs) / secs,
        "insert8": lambda: replay_insert(replay_addr, eight, window, secs) / secs,
        "echo_stream": lambda: args.batch * echo_stream(echo_addr, secs) / secs,
        "sample": lambda: replay_sample(replay_addr, args.batch, secs) / secs,
    }
    try:
        echo_bidi(echo_addr, os.urandom(size), window, 0.2)  # warm up both; fills the table for "sample"
        replay_insert(replay_addr, eight, window, 0.3)
        results: dict[str, list[float]] = {name: [] for name in phases}
        for _ in range(args.rounds):
            for name, phase in phases.items():
                results[name].append(phase())
        med = {name: statistics.median(values) for name, values in results.items()}
        report("(a) echo bidi, 1 item/message", med["echo1"], size)
        report("(b) replay Insert, 1 item/request", med["insert1"], size, med["echo1"])
        report("(a) echo bidi, 8 items/message", med["echo8"], size)
        report("(b) replay Insert, 8 items/request", med["insert8"], size, med["echo8"])
        report(f"(a) echo server stream, {args.batch} items/message", med["echo_stream"], size)
        report(f"(c) replay Sample, B={args.batch}", med["sample"], size, med["echo_stream"])
    finally:
        for stop, proc in ((echo_stop, echo_proc), (replay_stop, replay_proc)):
            stop.set()
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


if __name__ == "__main__":
    main()
