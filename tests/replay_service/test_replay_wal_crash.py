"""Fault injection with real processes: kill -9 a replay server with a wal table mid-stream, restart, count.

Every insert the server acknowledged must be there after the restart (DESIGN.md §8, faults);
torn or corrupt log tails and checkpoints are reported (path, offset) and skipped.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from herd.testing.processes import ServiceProcess
from replay_service import wal
from replay_service.client import ReplayClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
TABLE = "trajectories"


def start(directory: Path, port: int = 0, checkpoint_every: float = 1.0) -> ServiceProcess:
    return ServiceProcess(
        [sys.executable, "-m", "replay_service.main", "--port", str(port), "--checkpoint-dir", str(directory),
         "--checkpoint-every", str(checkpoint_every), "--durability", "wal", "--wal-fsync-interval-ms", "10",
         "--table", TABLE, "--queue-size", "1000000"],
        ready="replay serving",
    )


def item(i: int) -> dict[str, np.ndarray]:
    """One ~4 KiB item whose every value encodes ``i``."""
    return {"id": np.full((2, 1), i, np.int64), "observation": np.full((2, 1, 512), i, np.float32)}


def read_all(address: str) -> dict[int, int]:
    """key -> id of every stored item (drains the queue)."""
    with ReplayClient(address) as client:
        table = client.table(TABLE)
        size = table.info().size
        if size == 0:
            return {}
        batch = table.sample(size, timeout=30)
        ids = batch.data["id"][0].tolist()
        assert all((batch.data["observation"][:, j] == ids[j]).all() for j in range(size)), "item data mangled"
        return dict(zip(batch.keys.tolist(), ids))


def test_kill_9_mid_stream_loses_no_acknowledged_insert(tmp_path: Path) -> None:
    server = start(tmp_path)
    acked: dict[int, int] = {}  # id -> key of every acknowledged insert (recorded as the ack arrives)
    stop = threading.Event()

    def write(writer: int) -> None:
        client = ReplayClient(server.address, max_in_flight=8)
        table = client.table(TABLE)
        window = threading.Semaphore(8)

        def on_ack(i: int, future: "concurrent.futures.Future[list[int]]") -> None:
            window.release()
            if future.exception() is None:  # failed futures (server gone, client closed) were never acked
                acked[i] = future.result()[0]

        try:
            for i in range(writer * 10_000_000, (writer + 1) * 10_000_000):
                while not window.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                table.insert_async(item(i)).add_done_callback(functools.partial(on_ack, i))
        finally:
            client.close(timeout=0.2)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in writers:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 3000 and time.monotonic() < deadline:  # spans several periodic checkpoints
        time.sleep(0.05)
    server.kill9()  # mid-stream: writers are still sending
    stop.set()
    for t in writers:
        t.join(30)
        assert not t.is_alive()
    acked_at_kill = dict(acked)  # every ack the clients ever got (some may arrive just after the kill)
    assert len(acked_at_kill) >= 1000

    restarted = start(tmp_path)
    try:
        replayed = restarted.wait_for_log("write-ahead log replayed")
        stored = read_all(restarted.address)
        stored_ids = set(stored.values())
        missing = [j for j in acked_at_kill if j not in stored_ids]
        wrong_key = [j for j, k in acked_at_kill.items() if stored.get(k) != j]
        torn = restarted.find_logs("torn record")
        print(f"\nkill -9 after {len(acked_at_kill)} acknowledged inserts; recovered {len(stored)} items "
              f"({len(stored) - len(acked_at_kill)} stored but unacked), {len(missing)} acknowledged missing; "
              f"log replay: {replayed['records']} records in {replayed['seconds']} s from lsn {replayed['from_lsn']}"
              f"{'; torn tail at ' + str(torn[0]['offset']) if torn else ''}")
        assert not missing, f"{len(missing)} acknowledged inserts lost, e.g. {missing[:5]}"
        assert not wrong_key
    finally:
        restarted.stop()


def test_torn_log_tail_and_corrupt_checkpoint_are_reported_and_skipped(tmp_path: Path) -> None:
    server = start(tmp_path, checkpoint_every=3600)  # only the start-up checkpoint: the items stay in the log
    with ReplayClient(server.address) as client:
        keys = [client.table(TABLE).insert(item(i))[0] for i in range(50)]
    server.kill9()
    (_, segment), = wal.list_segments(str(tmp_path / f"{TABLE}.wal"))
    size = os.path.getsize(segment)
    with open(segment, "r+b") as f:
        f.truncate(size - 100)  # tear the last record, as a crash mid-append would
    server = start(tmp_path, checkpoint_every=3600)
    try:
        torn = server.wait_for_log("torn record")
        assert torn["path"] == segment and 0 < torn["offset"] < size - 100 and torn["truncated"] is True
        with ReplayClient(server.address) as client:
            assert client.table(TABLE).info().size == 49  # the torn last record is skipped, the rest replayed
            more = [client.table(TABLE).insert(item(1000 + i))[0] for i in range(10)]
        assert more[0] == keys[-1]  # the torn insert's key is free again: it was never in the table
    finally:
        server.kill9()
    # The restart checkpointed the 49 recovered items; the 10 new ones are only in the log.
    checkpoint = tmp_path / f"{TABLE}.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    server = start(tmp_path, checkpoint_every=3600)
    try:
        report = server.wait_for_log("checkpoint unreadable")
        assert report["path"] == str(checkpoint) and report["moved_to"].startswith(str(checkpoint) + ".corrupt-")
        assert sorted(read_all(server.address).values()) == list(range(1000, 1010))  # what the log had
    finally:
        assert server.stop() == 0
