"""Replay over gRPC, the happy paths: insert -> sample round trips through ``ReplayClient`` on a real server."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from herd.interfaces import BatchSource, RateLimitTimeout, SampledBatch, TrajectoryWriter
from replay_service.client import ReplayClient, SampleStream, TableClient
from replay_service.config import TableConfig
from replay_service.protocol import InsertTimeout


@pytest.fixture(scope="module")
def client(replay_server):
    with ReplayClient(replay_server.address) as c:
        yield c


def test_table_client_satisfies_the_interfaces(client):
    table: TableClient = client.table("queue")
    writer: TrajectoryWriter = table
    source: BatchSource = table
    assert callable(writer.insert) and callable(source.sample) and callable(source.update_priorities)
    assert client.table("queue") is table  # one client (and one insert stream) per table


def test_queue_round_trip_keeps_order_keys_and_data(client, item):
    table = client.table("queue")
    keys = []
    for i in range(0, 10, 2):
        keys += table.insert(item(i, n=2))
    assert len(keys) == 10 and keys == sorted(keys) and len(set(keys)) == 10
    batch = table.sample(10, timeout=5)
    assert batch.keys.tolist() == keys  # FIFO: acked keys, in insert order
    assert batch.probabilities.shape == (10,)
    assert batch.data["id"].shape == (3, 10)  # [T, B]
    assert batch.data["id"][0].tolist() == list(range(10))
    expected = np.concatenate([item(i, n=2)["observation"] for i in range(0, 10, 2)], axis=1)
    np.testing.assert_array_equal(batch.data["observation"], expected)
    assert batch.data["observation"].dtype == np.float32
    assert not batch.data["observation"].flags.writeable  # zero-copy views over the message
    assert batch.table_size == 0
    with pytest.raises(RateLimitTimeout):
        table.sample(1, timeout=0.3)  # each queue item is sampled once


def test_several_tables_on_one_server(client, item):
    client.table("uniform").insert(item(100))
    client.table("prio").insert(item(200), priorities=[1.0])
    assert client.table("uniform").sample(3, timeout=5).data["id"][0].tolist() == [100, 100, 100]
    assert client.table("prio").sample(1, timeout=5).data["id"][0].tolist() == [200]
    infos = {info.name: info for info in client.info()}
    assert set(infos) == {"queue", "small", "uniform", "prio", "scratch"}
    assert infos["uniform"].size == 1 and infos["uniform"].sampler == "uniform"
    assert infos["prio"].sampler == "prioritized" and infos["prio"].priority_exponent == 1.0


def test_insert_async_pipelines_and_acks_in_order(client, item):
    table = client.table("uniform")
    futures = [table.insert_async(item(1000 + i)) for i in range(20)]
    keys = [f.result(timeout=10) for f in futures]
    assert all(len(k) == 1 for k in keys)
    flat = [k[0] for k in keys]
    assert flat == sorted(flat)
    assert table.in_flight == 0 and table.flush(1)


def test_sample_stream_prefetches(client, item):
    table = client.table("queue")
    for i in range(12):
        table.insert(item(i))
    with SampleStream(table, 4, prefetch=2) as stream:
        ids = [stream.next(timeout=5).data["id"][0].tolist() for _ in range(3)]
        assert ids == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
        with pytest.raises(RateLimitTimeout):
            stream.next(timeout=0.3)
        table.insert(item(12, n=4))
        assert next(stream).data["id"][0].tolist() == [12, 13, 14, 15]


def test_sample_stream_stages_each_batch_in_its_prefetch_thread(client, item):
    """What a GPU learner hangs its pinning on (``stage=pin_batch``): every batch, before it is queued."""
    table = client.table("uniform")  # sampled with replacement: whatever other tests left, batches come
    table.insert(item(0))
    staged = []

    def stage(batch):
        staged.append(threading.current_thread().name)
        return SampledBatch(batch.keys, batch.probabilities, {**batch.data, "staged": np.ones(1)}, batch.table_size)

    with SampleStream(table, 4, prefetch=1, stage=stage) as stream:
        batches = [stream.next(timeout=5) for _ in range(2)]
    assert all("staged" in b.data and b.data["id"].shape == (3, 4) for b in batches)
    assert staged[:2] == ["sample-uniform", "sample-uniform"]  # the stream's thread, not the learner's


def test_sample_stream_raises_what_its_stage_raised(client, item):
    table = client.table("uniform")
    table.insert(item(0))

    def stage(batch):
        raise RuntimeError("pin_memory failed")

    with SampleStream(table, 4, prefetch=1, stage=stage) as stream:
        with pytest.raises(RuntimeError, match="pin_memory failed"):
            stream.next(timeout=5)


def test_priorities_update_and_prioritized_sample(client, item):
    table = client.table("prio")
    keys = table.insert(item(300, n=3), priorities=[0.0, 0.0, 5.0])
    info = table.info()
    first = info.size - 3  # earlier tests may have left items: silence them
    assert first >= 0
    batch = table.sample(8, timeout=5)
    if first == 0:
        assert set(batch.data["id"][0].tolist()) == {302}
    assert table.update_priorities(keys, [7.0, 0.0, 0.0]) == 3
    assert table.update_priorities([10**9], [1.0]) == 0  # unknown keys: ignored
    old = [k for k in range(1, keys[0])]
    if old:
        table.update_priorities(old, [0.0] * len(old))
    batch = table.sample(8, timeout=5)
    assert set(batch.keys.tolist()) == {keys[0]}
    np.testing.assert_allclose(batch.probabilities, 1.0)
    with pytest.raises(ValueError, match="priorit"):
        table.update_priorities(keys[:1], [float("nan")])


def test_insert_rate_limit_timeout_raises_insert_timeout(client, item):
    table = client.table("small")
    with pytest.raises(InsertTimeout) as e:
        table.insert(item(0, n=3), timeout=0.3)  # the queue holds 2
    assert len(e.value.keys) == 2  # those got in, as with Table.insert
    with pytest.raises(InsertTimeout) as e:
        table.insert(item(3, n=2), timeout=0.3)
    assert e.value.keys == []  # nothing got in
    assert table.sample(2, timeout=5).data["id"][0].tolist() == [0, 1]
    assert len(table.insert(item(4))) == 1  # the stream serves again after the rejected request
    table.sample(1, timeout=5)


def test_concurrent_writers_and_a_sampler_lose_and_duplicate_nothing(start_replay):
    server = start_replay(tables=(TableConfig.queue("trajectories", 16),))  # small: writers block on it
    writers, per_writer = 4, 50
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            with ReplayClient(server.address) as c:
                table = c.table("trajectories")
                for i in range(per_writer):
                    table.insert({"w": np.full((1, 1), w, np.int64), "i": np.full((1, 1), i, np.int64)})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    with ReplayClient(server.address) as c, c.table("trajectories").sample_stream(10) as stream:
        while len(seen) < writers * per_writer and not errors:
            batch = stream.next(timeout=20)
            seen += list(zip(batch.data["w"][0].tolist(), batch.data["i"][0].tolist()))
    for t in threads:
        t.join(10)
    assert not errors
    assert sorted(seen) == [(w, i) for w in range(writers) for i in range(per_writer)]
    for w in range(writers):  # FIFO per writer: each writer's items come out in its order
        assert [i for ww, i in seen if ww == w] == list(range(per_writer))


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_info_reports_blocked_calls_and_cancelled_streams_release_them(start_replay, item):
    server = start_replay(tables=(TableConfig.queue("q", 2),))
    with ReplayClient(server.address) as client:
        table = client.table("q")
        stream = table.sample_stream(1)  # empty table: the server's Sample handler waits
        assert _wait_for(lambda: table.info().rate_limiter["blocked_samples"] == 1)
        stream.close()  # cancelled: the handler notices within one wait slice
        assert _wait_for(lambda: table.info().rate_limiter["blocked_samples"] == 0, 2.0)
        table.insert(item(0, n=2))
        future = table.insert_async(item(2))  # the queue is full: this one waits
        assert _wait_for(lambda: table.info().rate_limiter["blocked_inserts"] == 1)
        info = table.info()
        assert info.size == 2 and info.rate_limiter["name"] == "queue"
        assert not info.rate_limiter["can_insert"] and info.rate_limiter["can_sample"]
        assert info.rate_limiter["insert_blocked_seconds"] > 0
        assert table.sample(1, timeout=5).data["id"][0].tolist() == [0]
        assert len(future.result(timeout=5)) == 1
        assert table.info().rate_limiter["blocked_inserts"] == 0


def test_big_messages_round_trip(start_replay):
    """Requests and batches over replay_codec.SMALL_MESSAGE_BYTES take the hand-written parser on both ends."""
    server = start_replay(tables=(TableConfig.queue("q", 64),))
    rng = np.random.default_rng(1)
    items = {"observation": rng.random((21, 8, 600), dtype=np.float32), "done": rng.random((21, 8)) < 0.5,
             "action": rng.integers(0, 5, (21, 8), dtype=np.int64)}
    with ReplayClient(server.address) as c:
        table = c.table("q")
        keys = table.insert(items) + table.insert(items)  # 2 x ~420 KB requests
        batch = table.sample(16, timeout=5)  # an ~840 KB batch
        assert batch.keys.tolist() == keys
        for name, value in items.items():
            np.testing.assert_array_equal(batch.data[name], np.concatenate([value, value], axis=1))
            assert batch.data[name].flags.aligned and not batch.data[name].flags.writeable
        with table.sample_stream(8) as stream:
            table.insert(items)
            np.testing.assert_array_equal(stream.next(timeout=5).data["observation"], items["observation"])


def test_closing_the_client_closes_its_streams(start_replay, item):
    server = start_replay(tables=(TableConfig.queue("q", 4),))
    client = ReplayClient(server.address)
    stream = client.table("q").sample_stream(1)
    client.table("q").insert(item(0))
    assert stream.next(timeout=5).data["id"][0].tolist() == [0]
    client.close()
    with pytest.raises(ConnectionError):  # UnavailableError
        stream.next(timeout=1)
    with pytest.raises(ConnectionError):  # a closed client's inserts fail, they do not hang
        client.table("q").insert(item(1), timeout=1)


def test_sample_stream_with_batches_per_call_bounds_how_far_ahead_it_samples(start_replay, item):
    server = start_replay(tables=(TableConfig.queue("q", 1000),))
    with ReplayClient(server.address) as c:
        table = c.table("q")
        for i in range(0, 200, 50):
            table.insert(item(i, n=50))
        with table.sample_stream(2, prefetch=2, batches_per_call=3) as stream:
            time.sleep(0.5)  # nobody consumes: the stream must stop after prefetch + batches_per_call batches
            assert table.info().num_samples <= 2 * (2 + 3)
            ids = [i for _ in range(10) for i in stream.next(timeout=5).data["id"][0].tolist()]
            assert ids == list(range(20))  # in order across calls
            assert stream.reconnects == 0
