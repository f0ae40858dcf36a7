"""Insert throughput of a replay table by durability: none vs checkpoint vs wal, in ONE run.

Prints items/s and MB/s (MB = 2**20 bytes) of acknowledged inserts for 64 KiB items (1 and 8
per request) and small items (420 bytes; 1 and 32 per request), each against three replay
servers in their own processes, identical but for the table's ``durability``:

- ``none``: memory only;
- ``checkpoint``: plus a full checkpoint every ``--checkpoint-every`` seconds (default 10);
- ``wal``: plus every insert fsynced to the log before its ack (``--fsync-ms``, default 10 ms
  group commit), and the same periodic checkpoints, which also truncate the log.

The table is uniform with FIFO eviction (``--pool`` items), so inserts never wait on a learner.
``--writers`` client threads each keep up to ``--in-flight`` requests unacknowledged (as actors do),
within the client's byte window (32 MiB), the same window against every mode: by default the window
a client takes against a wal server (``DURABLE_INSERT_WINDOW``, 1024 requests). A wal ack waits for
its group commit (~one interval plus the fsync), so a stream moves at most a window per commit: with
8 in flight the wal rows measure the window, not the log. ``--in-flight 0`` uses each client's
default (32 against none/checkpoint, 1024 against wal).
Target (issue 5): wal at most 30% slower than none with a 10 ms interval.
Run: ``python benchmarks/replay_wal.py [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from replay_service.servicer import DURABLE_INSERT_WINDOW  # noqa: E402

MODES = ("none", "checkpoint", "wal")


def make_items(item_bytes: int, n: int) -> dict[str, np.ndarray]:
    """``n`` items of 20 steps, about ``item_bytes`` each (float32 observations + per-step fields)."""
    t = 20
    small = t * (1 + 4 + 4 + 8)
    obs = max(1, (item_bytes - small) // (4 * t))
    rng = np.random.default_rng(0)
    items = {
        "step_type": np.ones((t, n), np.uint8),
        "reward": rng.random((t, n), dtype=np.float32),
        "discount": np.ones((t, n), np.float32),
        "action": np.zeros((t, n), np.int64),
        "observation": rng.random((t, n, obs), dtype=np.float32),
    }
    return items


def nbytes_per_item(items: dict[str, np.ndarray]) -> int:
    return int(sum(v.nbytes for v in items.values()) // next(iter(items.values())).shape[1])


def _server(ready: "mp.Queue[int]", stop: "mp.Event", durability: str, directory: str, pool: int,
            fsync_ms: float, checkpoint_every: float) -> None:
    from replay_service.config import ReplayServiceConfig, TableConfig
    from replay_service.main import serve

    tables = tuple(  # one table per item size (a table's items share one signature)
        TableConfig(name=name, sampler="uniform", remover="fifo", max_size=pool, max_times_sampled=0,
                    rate_limiter="min_size", durability=durability, wal_fsync_interval_ms=fsync_ms)
        for name in ("big", "small"))
    config = ReplayServiceConfig(tables=tables, checkpoint_dir=directory,
                                 checkpoint_every_seconds=checkpoint_every)
    event = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), event.set()), daemon=True).start()
    serve(config, stop_event=event, on_ready=ready.put)


def insert_rate(address: str, name: str, items: dict[str, np.ndarray], writers: int, in_flight: int,
                seconds: float) -> float:
    """Items acknowledged per second by ``writers`` threads, each with its own client and stream."""
    from replay_service.client import ReplayClient

    n = next(iter(items.values())).shape[1]
    counts = [0] * writers
    start_at = time.monotonic() + 0.5  # connect first
    stop_at = start_at + seconds

    def run(w: int) -> None:
        with ReplayClient(address, max_in_flight=in_flight or None) as client:
            table = client.table(name)
            table.insert(items)  # warm up: signature fixed, stream open
            while time.monotonic() < start_at:
                time.sleep(0.001)
            done: collections.deque = collections.deque()
            while time.monotonic() < stop_at:
                done.append(table.insert_async(items))  # blocks while in_flight requests are unacknowledged
                while done and done[0].done():
                    done.popleft().result()
                    counts[w] += n
            for f in done:
                f.result()
                counts[w] += n

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per case and round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds per case, each starting with another mode (the median is printed)")
    parser.add_argument("--writers", type=int, default=2, help="client threads, one insert stream each")
    parser.add_argument("--in-flight", type=int, default=DURABLE_INSERT_WINDOW,
                        help="unacknowledged requests per stream, every mode (0 = the client's default)")
    parser.add_argument("--fsync-ms", type=float, default=10.0, help="wal group-commit interval")
    parser.add_argument("--checkpoint-every", type=float, default=10.0, help="seconds between checkpoints")
    parser.add_argument("--pool", type=int, default=2000, help="items the table holds (oldest evicted)")
    parser.add_argument("--dir", default="", help="checkpoint/log directory (default: a temporary one)")
    args = parser.parse_args()

    root = args.dir or tempfile.mkdtemp(prefix="herd-replay-wal-")
    ctx = mp.get_context("spawn")
    servers = {}
    for mode in MODES:
        ready, stop = ctx.Queue(), ctx.Event()
        directory = os.path.join(root, mode)
        os.makedirs(directory, exist_ok=True)
        proc = ctx.Process(target=_server, args=(ready, stop, mode, directory, args.pool, args.fsync_ms,
                                                 args.checkpoint_every), daemon=True)
        proc.start()
        servers[mode] = (proc, stop, f"127.0.0.1:{ready.get(timeout=60)}")
    print(f"replay insert throughput by durability: {args.writers} writers x {args.in_flight} in flight, "
          f"median of {args.rounds} interleaved rounds of {args.seconds:.0f} s, wal fsync interval {args.fsync_ms} ms, checkpoint every "
          f"{args.checkpoint_every} s, pool {args.pool} items, dir {root}")
    cases = [("64 KiB", "big", 64 * 1024, 1), ("64 KiB", "big", 64 * 1024, 8),
             ("small", "small", 0, 1), ("small", "small", 0, 32)]
    try:
        for label, table, size, per_request in cases:
            items = make_items(size, per_request)
            item_size = nbytes_per_item(items)
            samples: dict[str, list[float]] = {mode: [] for mode in MODES}
            for r in range(args.rounds):  # interleaved, so load from other processes hits every mode alike,
                for mode in MODES[r % len(MODES):] + MODES[:r % len(MODES)]:  # each first in turn (writeback
                    samples[mode].append(  # of the previous phase's files lands on whichever runs next)
                        insert_rate(servers[mode][2], table, items, args.writers, args.in_flight, args.seconds))
            rates = {mode: statistics.median(v) for mode, v in samples.items()}
            for mode in MODES:
                slower = 100.0 * (1.0 - rates[mode] / rates["none"])
                print(f"  {label:>6} items ({item_size} B), {per_request:2d}/request, {mode:>10}: "
                      f"{rates[mode]:9.0f} items/s {rates[mode] * item_size / 2**20:8.1f} MB/s "
                      f"({slower:+5.1f}% slower than none)")
    finally:
        for proc, stop, _ in servers.values():
            stop.set()
        for proc, _, _ in servers.values():
            proc.join(30)
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
