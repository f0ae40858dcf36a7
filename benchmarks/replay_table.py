"""In-process replay throughput: insert and sample of 64 KiB items through a Queue table.

Prints items/s and MB/s (MB = 2**20 bytes) for inserts alone, samples alone, and one
writer thread + one reader thread running together. This is the ceiling the gRPC replay
service is compared against (DESIGN.md §8). Run: ``python benchmarks/replay_table.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from replay_service.table import TableClosed, queue  # noqa: E402

ITEM_BYTES = 64 * 1024


def make_batch(t: int, n: int) -> dict[str, np.ndarray]:
    """``n`` items of ``t`` steps, 64 KiB each: a float32 observation plus small per-step fields."""
    small = t * (1 + 4 + 4 + 8)  # step_type, reward, discount, action
    obs_floats = (ITEM_BYTES - small) // (4 * t)
    rng = np.random.default_rng(0)
    batch: dict[str, np.ndarray] = {
        "observation": rng.random((t, n, obs_floats), dtype=np.float32),
        "step_type": np.ones((t, n), np.uint8),
        "reward": np.zeros((t, n), np.float32),
        "discount": np.ones((t, n), np.float32),
        "action": np.zeros((t, n), np.int64),
    }
    return batch


def item_bytes(batch: dict[str, np.ndarray]) -> int:
    n = next(iter(batch.values())).shape[1]
    return int(sum(v.nbytes for v in batch.values()) // n)


def report(label: str, items: int, seconds: float, size: int) -> None:
    print(f"{label:<28} {items / seconds:>10,.0f} items/s {items * size / seconds / 2**20:>9,.1f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.8, help="duration of each phase")
    parser.add_argument("--unroll", type=int, default=20, help="T, steps per item")
    parser.add_argument("--insert-batch", type=int, default=8, help="N items per insert call")
    parser.add_argument("--sample-batch", type=int, default=32, help="B items per sample call")
    parser.add_argument("--queue-size", type=int, default=1024, help="items the queue holds")
    args = parser.parse_args()
    n, b, size = args.insert_batch, args.sample_batch, args.queue_size
    batch = make_batch(args.unroll, n)
    per_item = item_bytes(batch)
    print(f"item {per_item} bytes (T={args.unroll}), insert N={n}, sample B={b}, queue size {size}")

    # Phase 1 and 2: fill the queue, then drain it, repeatedly, timing each side alone.
    table = queue("bench", size)
    inserted = sampled = 0
    t_insert = t_sample = 0.0
    while t_insert < args.seconds or t_sample < args.seconds:
        start = time.perf_counter()
        while table.size + n <= size:
            table.insert(batch)
            inserted += n
        t_insert += time.perf_counter() - start
        start = time.perf_counter()
        while table.size >= b:
            table.sample(b)
            sampled += b
        t_sample += time.perf_counter() - start
    report("insert (alone)", inserted, t_insert, per_item)
    report("sample (alone)", sampled, t_sample, per_item)

    # Phase 3: one writer and one reader thread through the blocking queue.
    table = queue("bench-concurrent", size)
    stop = threading.Event()
    counts = {"in": 0, "out": 0}

    def writer() -> None:
        try:
            while not stop.is_set():
                table.insert(batch)
                counts["in"] += n
        except TableClosed:
            pass

    def reader() -> None:
        try:
            while not stop.is_set():
                table.sample(b)
                counts["out"] += b
        except TableClosed:
            pass

    threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=reader, daemon=True)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(args.seconds)
    stop.set()
    elapsed = time.perf_counter() - start
    done = dict(counts)
    table.close()  # wakes whichever side is blocked
    for th in threads:
        th.join(5)
    report("insert (with a reader)", done["in"], elapsed, per_item)
    report("sample (with a writer)", done["out"], elapsed, per_item)


if __name__ == "__main__":
    main()
