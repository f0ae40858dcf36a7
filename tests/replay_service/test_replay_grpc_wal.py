"""Durability options through the server: wal acks after fsync without serializing the stream, config errors."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from replay_service.client import ReplayClient
from replay_service.config import ReplayServiceConfig, TableConfig

pytestmark = pytest.mark.timeout(60)


def one(i: int, n: int = 1) -> dict[str, np.ndarray]:
    ids = np.arange(i, i + n, dtype=np.int64)
    return {"id": np.broadcast_to(ids, (2, n)).copy(), "observation": np.zeros((2, n, 3), np.float32)}


def wal_table(name: str, interval_ms: float) -> TableConfig:
    return TableConfig(name=name, sampler="fifo", remover="fifo", max_size=10_000, max_times_sampled=1,
                       rate_limiter="queue", durability="wal", wal_fsync_interval_ms=interval_ms)


def test_acks_are_pipelined_across_fsyncs_and_survive_a_restart(start_replay, tmp_path):
    # With a 100 ms interval, one fsync per request would take >= 4 s for 40 requests; the
    # in-flight window shares each fsync among the requests that arrived during the interval.
    tables = (wal_table("durable", 100.0), TableConfig(name="volatile", durability="none"))
    server = start_replay(tables=tables, checkpoint_dir=str(tmp_path), checkpoint_every_seconds=60.0)
    port = server.port
    with ReplayClient(server.address, max_in_flight=16) as client:
        table = client.table("durable")
        table.insert(one(0))  # first fsync, signature fixed
        started = time.monotonic()
        futures = [table.insert_async(one(i)) for i in range(1, 41)]
        keys = [f.result(timeout=30)[0] for f in futures]
        elapsed = time.monotonic() - started
        client.table("volatile").insert(one(0))
        client.checkpoint()
    print(f"40 wal inserts, 100 ms fsync interval, 16 in flight: {elapsed:.2f} s")
    assert keys == list(range(2, 42))
    assert elapsed < 2.0, f"acks serialized behind one fsync each: {elapsed:.2f} s"
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".")) == ["durable.npz", "durable.wal"]
    server.stop()
    server = start_replay(port=port, tables=tables, checkpoint_dir=str(tmp_path), checkpoint_every_seconds=60.0)
    with ReplayClient(server.address) as client:
        assert client.table("durable").info().size == 41
        assert client.table("volatile").info().size == 0  # durability none: memory only
        batch = client.table("durable").sample(41, timeout=5)
        assert batch.data["id"][0].tolist() == list(range(41))


def test_durability_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"^durability: 'disk' is not one of \['none', 'checkpoint', 'wal'\]"):
        TableConfig(durability="disk")
    with pytest.raises(ValueError, match=r"^tables\[1\]\.durability: 'fast' is not one of"):
        ReplayServiceConfig(tables=({"name": "a"}, {"name": "b", "durability": "fast"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^tables\[0\]\.wal_fsync_interval_ms: expected a finite number >= 0"):
        ReplayServiceConfig(tables=({"name": "a", "wal_fsync_interval_ms": -1},))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^tables\[0\]\.durabilty: unknown table option"):
        ReplayServiceConfig(tables=({"name": "a", "durabilty": "wal"},))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^tables\[0\]\.durability: 'wal' needs a checkpoint_dir"):
        ReplayServiceConfig(tables=(wal_table("a", 10),))
    with pytest.raises(ValueError, match=r"^tables\[0\]\.durability: 'wal' needs checkpoint_every_seconds > 0"):
        ReplayServiceConfig(tables=(wal_table("a", 10),), checkpoint_dir=str(tmp_path))
    config = ReplayServiceConfig(tables=({"name": "a", "durability": "wal"},), checkpoint_dir=str(tmp_path),
                                 checkpoint_every_seconds=5.0)  # type: ignore[arg-type]
    assert config.tables[0] == TableConfig(name="a", durability="wal")
    assert TableConfig().durability == "checkpoint" and TableConfig().wal_fsync_interval_ms == 10.0


def test_clients_widen_their_window_for_a_durable_server_unless_told_otherwise(start_replay, tmp_path):
    from replay_service.insert_stream import DEFAULT_IN_FLIGHT
    from replay_service.servicer import DURABLE_INSERT_WINDOW

    durable = start_replay(tables=(wal_table("durable", 10.0),), checkpoint_dir=str(tmp_path),
                           checkpoint_every_seconds=60.0)
    volatile = start_replay(tables=(TableConfig(name="volatile", durability="none"),))
    windows = []
    for address, name, chosen in ((durable.address, "durable", None), (durable.address, "durable", 3),
                                  (volatile.address, "volatile", None)):
        with ReplayClient(address, max_in_flight=chosen) as client:
            table = client.table(name)
            table.insert(one(0))  # the window is adopted once the stream is open
            windows.append(table._inserts.max_in_flight)
    assert windows == [DURABLE_INSERT_WINDOW, 3, DEFAULT_IN_FLIGHT]
