"""Checkpoints, restarts and reconnects: the replay server restores its tables, clients ride through."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from herd.interfaces import RateLimitTimeout
from replay_service.client import ReplayClient
from replay_service.config import TableConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLES = (TableConfig.queue("queue", 1000), TableConfig.uniform_replay("uniform", 100))


def one(i: int) -> dict[str, np.ndarray]:
    return {"id": np.full((2, 1), i, np.int64), "observation": np.full((2, 1, 3), i, np.float32)}


def test_checkpoint_rpc_then_restart_restores_every_table(start_replay, tmp_path):
    server = start_replay(tables=TABLES, checkpoint_dir=str(tmp_path))
    with ReplayClient(server.address) as client:
        keys = [client.table("queue").insert(one(i))[0] for i in range(5)]
        client.table("uniform").insert(one(99))
        assert client.checkpoint() == str(tmp_path)
        assert sorted(os.listdir(tmp_path)) == ["queue.npz", "uniform.npz"]
        before = {info.name: info for info in client.info()}
    server.stop()
    server = start_replay(tables=TABLES, checkpoint_dir=str(tmp_path))
    with ReplayClient(server.address) as client:
        after = {info.name: info for info in client.info()}
        for name in ("queue", "uniform"):
            assert (after[name].size, after[name].num_inserts) == (before[name].size, before[name].num_inserts)
        batch = client.table("queue").sample(5, timeout=5)
        assert batch.keys.tolist() == keys and batch.data["id"][0].tolist() == list(range(5))
        assert client.table("queue").insert(one(5))[0] == keys[-1] + 1  # keys continue after a restore


def test_final_checkpoint_on_shutdown_and_periodic_checkpoints(start_replay, tmp_path):
    server = start_replay(tables=TABLES, checkpoint_dir=str(tmp_path), checkpoint_every_seconds=0.2)
    path = tmp_path / "queue.npz"
    with ReplayClient(server.address) as client:
        client.table("queue").insert(one(1))
        deadline = time.monotonic() + 5
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists(), "no periodic checkpoint"
        client.table("queue").insert(one(2))
    server.stop()  # the final checkpoint has the second item too
    server = start_replay(tables=TABLES, checkpoint_dir=str(tmp_path))
    with ReplayClient(server.address) as client:
        assert client.table("queue").sample(2, timeout=5).data["id"][0].tolist() == [1, 2]


def test_corrupt_checkpoint_is_moved_aside_and_the_table_starts_empty(start_replay, tmp_path):
    (tmp_path / "queue.npz").write_bytes(b"not a zip file")
    server = start_replay(tables=TABLES, checkpoint_dir=str(tmp_path))
    with ReplayClient(server.address) as client:
        assert client.table("queue").info().size == 0
        client.table("queue").insert(one(1))
        client.checkpoint()
    assert any(name.startswith("queue.npz.corrupt-") for name in os.listdir(tmp_path))


def test_inserts_ride_through_a_server_restart_without_losing_acked_items(start_replay, tmp_path):
    server = start_replay(tables=TABLES, checkpoint_dir=str(tmp_path))
    port = server.port
    acked: list[int] = []
    errors: list[BaseException] = []
    total = 60

    def write() -> None:
        try:
            with ReplayClient(f"127.0.0.1:{port}") as client:
                table = client.table("queue")
                pending = []
                for i in range(total):
                    pending.append((i, table.insert_async(one(i))))
                    while len(pending) > 2:
                        j, future = pending.pop(0)
                        future.result(timeout=30)
                        acked.append(j)
                    time.sleep(0.01)
                for j, future in pending:
                    future.result(timeout=30)
                    acked.append(j)
                reconnects.append(table.reconnects)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    reconnects: list[int] = []
    writer = threading.Thread(target=write)
    writer.start()
    while len(acked) < 15:
        time.sleep(0.01)
    server.stop()  # mid-stream; the writer keeps calling insert_async meanwhile
    time.sleep(0.3)
    server = start_replay(port=port, tables=TABLES, checkpoint_dir=str(tmp_path))
    writer.join(60)
    assert not errors, errors
    assert acked == list(range(total))
    assert reconnects and reconnects[0] >= 1
    with ReplayClient(server.address) as client:
        stored = client.table("queue").sample(client.table("queue").info().size, timeout=5)
    ids = stored.data["id"][0].tolist()
    assert sorted(set(ids)) == list(range(total))  # no acked item lost
    assert len(ids) == total  # and a graceful stop duplicates nothing


def test_sample_stream_reconnects_after_a_restart(start_replay, tmp_path):
    server = start_replay(tables=TABLES, checkpoint_dir=str(tmp_path))
    port = server.port
    with ReplayClient(server.address) as client:
        stream = client.table("queue").sample_stream(1)
        client.table("queue").insert(one(1))
        assert stream.next(timeout=5).data["id"][0].tolist() == [1]
        server.stop()
        with pytest.raises(RateLimitTimeout):
            stream.next(timeout=0.3)  # no server: waits, does not raise anything else
        server = start_replay(port=port, tables=TABLES, checkpoint_dir=str(tmp_path))
        client.table("queue").insert(one(2))
        assert stream.next(timeout=10).data["id"][0].tolist() == [2]
        assert stream.reconnects >= 1
        stream.close()


def test_python_m_replay_service_main_serves_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay_service.main", "--port", "0", "--checkpoint-dir", str(tmp_path)],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = None
        for line in proc.stderr:  # JSON log lines
            match = re.search(r'"msg": "replay serving".*"port": (\d+)', line)
            if match:
                port = int(match.group(1))
                break
        assert port, "no 'replay serving' log line"
        with ReplayClient(f"127.0.0.1:{port}") as client:
            assert [info.name for info in client.info()] == ["trajectories"]
            client.table("trajectories").insert(one(1))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert (tmp_path / "trajectories.npz").exists()  # final checkpoint
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
