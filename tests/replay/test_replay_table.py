"""The replay table: data round trip, selectors and limiters in a table, blocking, threads, bad input."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable

import numpy as np
import pytest

from herd.interfaces import BatchSource, RateLimitTimeout, TrajectoryWriter
from replay_service.rate_limiters import MinSize, Queue, SampleToInsertRatio
from replay_service.selectors import Fifo, Lifo, MinHeap, Prioritized, Uniform
from replay_service.protocol import InsertTimeout
from replay_service.table import Table, TableClosed, queue, uniform_replay

pytestmark = pytest.mark.timeout(30)  # a lost wake-up fails fast instead of hanging the suite

T = 5  # steps per item


def batch(ids: list[int], t: int = T) -> dict[str, np.ndarray]:
    """A stacked insert of len(ids) items: item i is recognizable from its id."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    obs = ids_arr[None, :, None] * 100.0 + np.arange(t)[:, None, None] + np.zeros((1, 1, 3))
    return {
        "id": np.broadcast_to(ids_arr, (1, len(ids))).copy(),  # per-unroll field, [1, N]
        "observation": obs.astype(np.float32),  # [T, N, 3]
        "action": np.tile(ids_arr, (t, 1)),  # [T, N]
    }


def ids_of(sampled: Any) -> list[int]:
    return [int(i) for i in sampled.data["id"][0]]


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = fn()
        except BaseException as e:  # handed to the test thread
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def test_insert_then_sample_round_trips_data_time_major() -> None:
    table = queue("q", 10)
    keys = table.insert(batch([7, 8, 9]))
    assert keys == [1, 2, 3]
    out = table.sample(2)
    assert out.keys.dtype == np.uint64 and out.keys.tolist() == [1, 2]
    assert out.probabilities.dtype == np.float64 and out.probabilities.tolist() == [1.0, 1.0]
    assert out.table_size == 1
    want = batch([7, 8])
    assert set(out.data) == set(want)
    for name, arr in want.items():
        assert out.data[name].shape == arr.shape and out.data[name].dtype == arr.dtype  # [T, B, ...]
        np.testing.assert_array_equal(out.data[name], arr)
        assert out.data[name].flags.c_contiguous and out.data[name].flags.writeable


def test_inserted_items_are_private_copies() -> None:
    table = uniform_replay("u", 10)
    src = batch([1])
    table.insert(src)
    src["observation"][:] = -1.0
    out = table.sample(1)
    np.testing.assert_array_equal(out.data["observation"], batch([1])["observation"])


def test_queue_order_is_exactly_insertion_order_each_item_once() -> None:
    table = queue("q", 8)
    got: list[int] = []
    next_id = 0
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 4))
        if table.size + n <= 8:
            table.insert(batch(list(range(next_id, next_id + n))))
            next_id += n
        b = int(rng.integers(1, 4))
        if table.size >= b:
            out = table.sample(b)
            assert out.keys.tolist() == [i + 1 for i in ids_of(out)]
            got += ids_of(out)
    if table.size:
        got += ids_of(table.sample(table.size))
    assert got == list(range(next_id))
    with pytest.raises(RateLimitTimeout):
        table.sample(1, timeout=0)


def test_fifo_with_max_times_sampled_one_never_repeats_within_a_batch() -> None:
    table = Table("f", Fifo(), Fifo(), max_size=10, max_times_sampled=1, rate_limiter=MinSize(1))
    table.insert(batch([0, 1]))
    with pytest.raises(RateLimitTimeout):  # 3 > the 2 samples the table can supply
        table.sample(3, timeout=0.02)
    assert ids_of(table.sample(2)) == [0, 1]


def test_uniform_samples_with_replacement_within_a_batch() -> None:
    table = uniform_replay("u", 10, seed=3)
    table.insert(batch([0, 1]))
    out = table.sample(50)
    assert sorted(set(ids_of(out))) == [0, 1] and out.table_size == 2
    assert np.all(out.probabilities == 0.5)


def test_max_times_sampled_deletes_after_the_last_sample() -> None:
    table = Table("m", Uniform(), Fifo(), max_size=100, max_times_sampled=3, seed=1)
    table.insert(batch(list(range(10))))
    seen: Counter[int] = Counter()
    while table.size:
        seen.update(ids_of(table.sample(1)))
    assert seen == {i: 3 for i in range(10)}
    info = table.info()
    assert (info.num_inserts, info.num_samples, info.num_deletes) == (10, 30, 10)


@pytest.mark.parametrize(
    "remover, priorities, survivors",
    [
        (Fifo(), None, [6, 7, 8, 9]),
        (Lifo(), None, [0, 1, 2, 9]),  # each new item evicts the previous newest
        # The lowest priority present is evicted before the new item goes in (as in Reverb).
        (MinHeap(), [5, 1, 7, 3, 9, 2, 8, 6, 0, 4], [2, 4, 6, 9]),
    ],
)
def test_max_size_evicts_with_the_remover(remover: Any, priorities: Any, survivors: list[int]) -> None:
    table = Table("e", Uniform(), remover, max_size=4)
    for i in range(10):
        table.insert(batch([i]), priorities=None if priorities is None else [priorities[i]])
        assert table.size == min(i + 1, 4)
    out = table.sample(400)
    assert sorted(set(ids_of(out))) == survivors
    assert table.info().num_deletes == 6


def test_prioritized_table_reports_probabilities_and_updates_priorities() -> None:
    table = Table("p", Prioritized(1.0), Fifo(), max_size=10, seed=5)
    keys = table.insert(batch([0, 1, 2]), priorities=[1.0, 3.0, 0.0])
    out = table.sample(200)
    probs = dict(zip(out.keys.tolist(), out.probabilities.tolist()))
    assert probs == {keys[0]: 0.25, keys[1]: 0.75}
    table.update_priorities([keys[0], keys[2], 999], [0.0, 1.0, 5.0])  # unknown key ignored
    out = table.sample(50)
    assert set(out.keys.tolist()) == {keys[1], keys[2]}
    with pytest.raises(ValueError, match="priorities"):
        table.update_priorities([keys[0], keys[1]], [1.0, float("nan")])
    assert set(table.sample(50).keys.tolist()) == {keys[1], keys[2]}  # nothing applied
    with pytest.raises(ValueError, match="priorities"):
        table.update_priorities([keys[0]], [1.0, 2.0])


def test_sample_blocks_on_empty_queue_until_an_insert() -> None:
    table = queue("q", 4)
    thread, out = run_in_thread(lambda: table.sample(2, timeout=10))
    time.sleep(0.05)
    table.insert(batch([0]))
    time.sleep(0.05)
    assert thread.is_alive()  # one item is not a batch of two
    table.insert(batch([1]))
    thread.join(5)
    assert not thread.is_alive() and ids_of(out["result"]) == [0, 1]
    assert table.info().sample_blocked_seconds > 0.02


def test_insert_blocks_on_full_queue_until_a_sample() -> None:
    table = queue("q", 2)
    table.insert(batch([0, 1]))
    thread, out = run_in_thread(lambda: table.insert(batch([2]), timeout=10))
    time.sleep(0.05)
    assert thread.is_alive()
    assert ids_of(table.sample(1)) == [0]
    thread.join(5)
    assert out["result"] == [3]
    assert ids_of(table.sample(2)) == [1, 2]
    assert table.info().insert_blocked_seconds > 0.02


def test_a_batch_larger_than_the_queue_goes_through_as_it_drains() -> None:
    table = queue("q", 2)
    thread, out = run_in_thread(lambda: table.insert(batch(list(range(6))), timeout=10))
    got: list[int] = []
    while len(got) < 6:
        got += ids_of(table.sample(1, timeout=5))
    thread.join(5)
    assert got == list(range(6)) and out["result"] == [1, 2, 3, 4, 5, 6]


def test_timeouts_raise_rate_limit_timeout() -> None:
    table = queue("q", 2)
    start = time.monotonic()
    with pytest.raises(RateLimitTimeout):
        table.sample(1, timeout=0)  # 0: does not wait
    with pytest.raises(RateLimitTimeout):
        table.sample(1, timeout=0.05)
    assert 0.04 < time.monotonic() - start < 1.0
    table.insert(batch([0]))
    with pytest.raises(InsertTimeout) as err:  # partial insert: one item fits, two don't
        table.insert(batch([1, 2, 3]), timeout=0.05)
    assert isinstance(err.value, RateLimitTimeout) and err.value.keys == [2]
    assert table.size == 2


def test_close_wakes_blocked_callers_with_table_closed() -> None:
    empty, full = queue("empty", 1), queue("full", 1)
    full.insert(batch([0]))
    threads = [
        run_in_thread(lambda: empty.sample(1)),  # blocked: nothing to sample
        run_in_thread(lambda: full.insert(batch([1]))),  # blocked: the queue is full
    ]
    time.sleep(0.05)
    assert all(thread.is_alive() for thread, _ in threads)
    empty.close()
    full.close()
    for thread, out in threads:
        thread.join(5)
        assert not thread.is_alive() and isinstance(out.get("error"), TableClosed)
    with pytest.raises(TableClosed):
        full.insert(batch([9]))
    with pytest.raises(TableClosed):
        full.sample(1, timeout=0)
    assert full.info().size == 1  # info still answers after close


def test_concurrent_writers_and_readers_lose_and_duplicate_nothing() -> None:
    table = queue("q", 16)
    writers, per_writer, readers = 8, 200, 4
    received: list[list[int]] = [[] for _ in range(readers)]
    all_keys: list[list[int]] = [[] for _ in range(readers)]

    def write(w: int) -> None:
        for s in range(per_writer):
            table.insert(batch([w * 1000 + s]), timeout=20)

    def read(r: int) -> None:
        try:
            while True:
                out = table.sample(4, timeout=20)
                received[r] += ids_of(out)
                all_keys[r] += out.keys.tolist()
        except TableClosed:
            pass

    threads = [threading.Thread(target=read, args=(r,)) for r in range(readers)]
    threads += [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for th in threads:
        th.start()
    for th in threads[readers:]:
        th.join(30)
    deadline = time.monotonic() + 10
    while table.info().num_samples < writers * per_writer and time.monotonic() < deadline:
        time.sleep(0.005)
    table.close()
    for th in threads[:readers]:
        th.join(10)
    ids = sum(received, [])
    assert sorted(ids) == sorted(w * 1000 + s for w in range(writers) for s in range(per_writer))
    keys = sorted(sum(all_keys, []))
    assert keys == list(range(1, writers * per_writer + 1))
    by_key = sorted(zip(sum(all_keys, []), ids))  # FIFO: each writer's items leave in its order
    for w in range(writers):
        mine = [i for _, i in by_key if i // 1000 == w]
        assert mine == sorted(mine)
    info = table.info()
    assert (info.size, info.num_inserts, info.num_samples) == (0, 1600, 1600)


def test_table_satisfies_the_actor_and_learner_interfaces() -> None:
    table = queue("q", 4)
    # Statically this needs TrajectoryWriter.insert to allow returning the keys (it says -> None).
    writer: TrajectoryWriter = table
    source: BatchSource = table
    writer.insert(batch([1]), priorities=[2.0], timeout=1.0)
    out = source.sample(1, timeout=1.0)
    source.update_priorities(out.keys.tolist(), [1.0])


def bad_inserts() -> list[tuple[Any, Any, str]]:
    good = batch([0, 1])
    return [
        ({}, None, "items"),
        ([1, 2], None, "items"),
        ({**good, "action": np.zeros((T, 3), np.int64)}, None, "'action'"),  # N mismatch
        ({k: v[:, :0] for k, v in good.items()}, None, "N = 0"),
        ({**good, "action": np.zeros(T, np.int64)}, None, "'action'"),  # no N axis
        ({**good, "action": good["action"].astype(np.int32)}, None, "'action'"),  # dtype
        ({**good, "observation": np.zeros((T, 2, 4), np.float32)}, None, "'observation'"),  # shape
        ({**good, "observation": np.zeros((T + 1, 2, 3), np.float32)}, None, "'observation'"),  # T
        ({k: v for k, v in good.items() if k != "action"}, None, "action"),  # missing field
        ({**good, "extra": np.zeros((T, 2))}, None, "extra"),
        ({**good, "blob": np.empty((1, 2), dtype=object)}, None, "'blob'"),
        (good, [1.0], "priorities"),
        (good, [1.0, -2.0], "priorities"),
        (good, [float("inf"), 1.0], "priorities"),
    ]


@pytest.mark.parametrize("items, priorities, field", bad_inserts())
def test_bad_inserts_raise_value_error_naming_the_field(items: Any, priorities: Any, field: str) -> None:
    table = uniform_replay("u", 10)
    table.insert(batch([5]))  # fixes the structure
    with pytest.raises(ValueError, match=field):
        table.insert(items, priorities=priorities)
    assert table.size == 1 and table.info().num_inserts == 1


def test_signature_given_up_front_is_enforced() -> None:
    sig: dict[str, Any] = {
        "id": (np.int64, (1,)), "observation": ("float32", (T, 3)), "action": (np.int64, [T])
    }
    table = queue("q", 4, signature=sig)
    with pytest.raises(ValueError, match="'observation'"):
        table.insert({**batch([0]), "observation": np.zeros((T, 1, 3))})  # float64
    table.insert(batch([0]))
    with pytest.raises(ValueError, match="signature"):
        queue("q", 4, signature={"x": ("float32", "abc")})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_size": 0}, "max_size"),
        ({"max_times_sampled": -1}, "max_times_sampled"),
        ({"name": ""}, "name"),
        ({"sampler": "fifo"}, "sampler"),
    ],
)
def test_bad_table_arguments(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"name": "t", "sampler": Fifo(), "remover": Fifo(), "max_size": 4}
    with pytest.raises(ValueError, match=field):
        Table(**{**args, **kwargs})


def test_selectors_and_limiters_cannot_be_shared() -> None:
    sel, lim = Fifo(), MinSize(1)
    with pytest.raises(ValueError, match="remover"):
        Table("t", sel, sel, max_size=4)
    Table("a", Fifo(), Fifo(), max_size=4, rate_limiter=lim)
    with pytest.raises(ValueError, match="rate_limiter"):
        Table("b", Fifo(), Fifo(), max_size=4, rate_limiter=lim)


def test_unsatisfiable_batch_sizes_are_rejected_instead_of_blocking_forever() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        queue("q", 4).sample(5)
    with pytest.raises(ValueError, match="batch_size"):
        Table("t", Fifo(), Fifo(), max_size=4, max_times_sampled=2).sample(9)
    stir = Table("s", Uniform(), Fifo(), max_size=100, rate_limiter=SampleToInsertRatio(1.0, 10, 5.0))
    with pytest.raises(ValueError, match="batch_size"):
        stir.sample(11)
    with pytest.raises(ValueError, match="batch_size"):
        stir.sample(0)


def test_sample_to_insert_ratio_paces_a_table() -> None:
    # spi 2, min size 4, buffer 3: diff = 2 * inserts - samples stays within [5, 11].
    table = Table("r", Uniform(), Fifo(), max_size=100, rate_limiter=SampleToInsertRatio(2.0, 4, 3.0), seed=0)
    with pytest.raises(InsertTimeout) as err:
        table.insert(batch(list(range(10))), timeout=0)
    assert len(err.value.keys) == 5  # 4 free below min size, then 2 * 5 = 10 <= 11 < 12
    table.sample(5)  # diff 10 -> 5
    with pytest.raises(RateLimitTimeout):
        table.sample(1, timeout=0)  # 4 < 5
    table.insert(batch([10, 11, 12]), timeout=0)  # 5 + 6 = 11
    state = table.info().rate_limiter_state
    assert (state["inserts"], state["samples"], state["diff"]) == (8, 5, 11.0)


def test_a_rejected_first_insert_does_not_fix_the_structure() -> None:
    table = queue("q", 4)
    with pytest.raises(ValueError, match="priorities"):
        table.insert({"x": np.zeros((2, 1), np.float64)}, priorities=[-1.0])
    table.insert(batch([0]))  # a different structure is still welcome
    with pytest.raises(ValueError, match="keys"):
        table.update_priorities([0.5], [1.0])  # type: ignore[list-item]
