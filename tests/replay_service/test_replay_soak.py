"""Bounded soak: 32 writer clients and 4 samplers against one replay server process (wal table) for 60 s.

No errors, the table never holds more than max_size items, the server's RSS (from /proc) stops
growing after warm-up, and the throughput is printed. ``HERD_SOAK_SECONDS`` shortens or lengthens it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from herd.interfaces import RateLimitTimeout
from herd.testing.processes import ServiceProcess
from replay_service.client import ReplayClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
WRITERS, SAMPLERS, QUEUE, BATCH = 32, 4, 512, 16
SECONDS = float(os.environ.get("HERD_SOAK_SECONDS", "60"))
WARM_UP = min(10.0, SECONDS / 4)


def items(writer: int) -> dict[str, np.ndarray]:
    """One 16 KiB item: 20 steps of 200 float32 observations and an id."""
    return {"id": np.full((20, 1), writer, np.int64), "observation": np.ones((20, 1, 200), np.float32)}


def test_32_writers_4_samplers_for_a_minute_no_errors_bounded_memory(tmp_path: Path) -> None:
    server = ServiceProcess(
        [sys.executable, "-m", "replay_service.main", "--port", "0", "--checkpoint-dir", str(tmp_path),
         "--checkpoint-every", "5", "--durability", "wal", "--table", "t", "--queue-size", str(QUEUE)],
        ready="replay serving",
    )
    errors: list[BaseException] = []
    inserted = [0] * WRITERS
    sampled = [0] * SAMPLERS
    stop_writing, stop_sampling = threading.Event(), threading.Event()

    def write(w: int) -> None:
        try:
            with ReplayClient(server.address, max_in_flight=4) as client:
                table = client.table("t")
                window = threading.Semaphore(4)

                def on_ack(future) -> None:  # type: ignore[no-untyped-def]
                    window.release()
                    if future.exception() is not None:
                        errors.append(future.exception())
                    else:
                        inserted[w] += 1

                while not stop_writing.is_set():
                    if window.acquire(timeout=0.1):
                        table.insert_async(items(w)).add_done_callback(on_ack)
                assert table.flush(timeout=60), "inserts still unacknowledged 60 s after the writers stopped"
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def sample(s: int) -> None:
        try:
            with ReplayClient(server.address) as client:
                table = client.table("t")
                while not stop_sampling.is_set():
                    try:
                        sampled[s] += len(table.sample(BATCH, timeout=10).keys)
                    except RateLimitTimeout:
                        if not stop_writing.is_set():
                            raise
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    samplers = [threading.Thread(target=sample, args=(s,)) for s in range(SAMPLERS)]
    for t in threads + samplers:
        t.start()
    started = time.monotonic()
    rss: list[tuple[float, int]] = []
    sizes: list[int] = []
    try:
        with ReplayClient(server.address) as monitor:
            while (elapsed := time.monotonic() - started) < SECONDS and not errors:
                rss.append((elapsed, server.rss_bytes()))
                sizes.append(monitor.table("t").info().size)
                time.sleep(1.0)
        stop_writing.set()
        for t in threads:
            t.join(120)
        stop_sampling.set()
        for t in samplers:
            t.join(60)
        duration = time.monotonic() - started
        assert not errors, f"{len(errors)} errors, first: {errors[0]!r}"
        assert max(sizes) <= QUEUE
        after_warm_up = [r for t, r in rss if t >= WARM_UP]
        base, peak, last = after_warm_up[0], max(after_warm_up), rss[-1][1]
        total_in, total_out = sum(inserted), sum(sampled)
        print(f"\nsoak {duration:.0f} s: {WRITERS} writers, {SAMPLERS} samplers, wal table of {QUEUE}: "
              f"{total_in / duration:.0f} inserts/s ({total_in * 16 / 1024 / duration:.1f} MiB/s), "
              f"{total_out / duration:.0f} samples/s, max size {max(sizes)}, server RSS "
              f"{rss[0][1] / 2**20:.0f} MiB at start, {base / 2**20:.0f} after warm-up, peak {peak / 2**20:.0f}, "
              f"end {last / 2**20:.0f}")
        assert total_in > 0 and total_out > 0
        assert peak <= base * 1.25 + 64 * 2**20, "server RSS kept growing after warm-up"
    finally:
        stop_writing.set()
        stop_sampling.set()
        assert server.stop() == 0
