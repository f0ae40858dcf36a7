"""Table checkpoints: round trip, atomic writes, no pickle, format version."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from herd.interfaces import RateLimitTimeout
from replay_service import checkpoint as ckpt
from replay_service.rate_limiters import SampleToInsertRatio
from replay_service.selectors import Fifo, Prioritized
from replay_service.table import Table, queue

pytestmark = pytest.mark.timeout(30)


def batch(ids: list[int]) -> dict[str, np.ndarray]:
    ids_arr = np.asarray(ids, dtype=np.int64)
    return {
        "id": ids_arr[None, :].copy(),  # [1, N]
        "core_state/0": np.ones((1, len(ids), 2), np.float32) * ids_arr[None, :, None],  # [1, N, H]
        "observation": np.arange(4, dtype=np.uint8)[:, None, None] + np.zeros((1, len(ids), 6), np.uint8),
    }


def comparable(info: object) -> dict[str, Any]:
    """An info snapshot without the wall-clock fields."""
    d = dict(vars(info))
    d["rate_limiter_state"] = without_clocks(d["rate_limiter_state"])
    return without_clocks(d)


def without_clocks(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not k.endswith("_blocked_seconds")}


def test_round_trip_restores_items_priorities_times_sampled_counters_and_limiter(tmp_path: Path) -> None:
    limiter = SampleToInsertRatio(samples_per_insert=4.0, min_size_to_sample=2, error_buffer=50.0)
    table = Table("prio", Prioritized(0.8), Fifo(), 6, max_times_sampled=3, rate_limiter=limiter, seed=4)
    keys = table.insert(batch(list(range(8))), priorities=[float(i) for i in range(8)])  # 2 evicted
    table.sample(5)
    table.update_priorities(keys[-3:], [0.5, 0.0, 2.0])
    path = tmp_path / "prio.npz"
    table.checkpoint(path)
    restored = Table.restore(path)
    assert comparable(restored.info()) == comparable(table.info())
    again = tmp_path / "again.npz"
    restored.checkpoint(again)
    h1, a1 = ckpt.read(path)
    h2, a2 = ckpt.read(again)
    for h in (h1, h2):
        h["rate_limiter"] = without_clocks(h["rate_limiter"])
    assert h1 == h2 and a1.keys() == a2.keys()
    for name in a1:
        np.testing.assert_array_equal(a1[name], a2[name])
        assert a1[name].dtype == a2[name].dtype
    # Times sampled carry over: the restored table supplies exactly the samples left.
    remaining = int((3 - a1["times_sampled"]).sum())
    taken = 0
    while restored.size >= 2:  # the limiter's min_size_to_sample is 2
        taken += len(restored.sample(1, timeout=1).keys)
    restored.checkpoint(again)
    _, a3 = ckpt.read(again)
    assert taken + int((3 - a3["times_sampled"]).sum()) == remaining
    assert restored.insert(batch([100])) == table.insert(batch([100])) == [9]  # keys continue


def test_queue_round_trip_keeps_order_and_fullness(tmp_path: Path) -> None:
    table = queue("q", 3)
    table.insert(batch([0, 1, 2]))
    table.sample(1)
    table.insert(batch([3]))
    table.checkpoint(tmp_path / "q.npz")
    restored = Table.restore(tmp_path / "q.npz")
    with pytest.raises(RateLimitTimeout):
        restored.insert(batch([4]), timeout=0)  # still full
    out = restored.sample(3)
    assert out.data["id"][0].tolist() == [1, 2, 3] and out.keys.tolist() == [2, 3, 4]
    np.testing.assert_array_equal(out.data["core_state/0"], batch([1, 2, 3])["core_state/0"])
    with pytest.raises(ValueError, match="'id'"):
        restored.insert({**batch([5]), "id": np.zeros((1, 1), np.int32)})  # signature restored


def test_empty_tables_round_trip(tmp_path: Path) -> None:
    blank = queue("blank", 2)
    blank.checkpoint(tmp_path / "blank.npz")
    assert comparable(Table.restore(tmp_path / "blank.npz").info()) == comparable(blank.info())
    drained = queue("drained", 2)
    drained.insert(batch([0]))
    drained.sample(1)
    drained.checkpoint(tmp_path / "drained.npz")
    restored = Table.restore(tmp_path / "drained.npz")
    assert restored.size == 0 and restored.info().num_samples == 1
    with pytest.raises(ValueError, match="'observation'"):
        restored.insert({**batch([1]), "observation": np.zeros((4, 1, 7), np.uint8)})


def test_write_is_atomic_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = queue("q", 4)
    table.insert(batch([0]))
    path = tmp_path / "t.npz"
    table.checkpoint(path)
    before = path.read_bytes()
    table.insert(batch([1]))

    def broken_savez(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        table.checkpoint(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["t.npz"]


def test_other_format_versions_and_foreign_files_are_refused(tmp_path: Path) -> None:
    header = {"format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION + 1}
    future = tmp_path / "future.npz"
    np.savez(future, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    with pytest.raises(ckpt.CheckpointError, match=f"format_version {ckpt.FORMAT_VERSION + 1} is not supported"):
        Table.restore(future)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(ckpt.CheckpointError, match="no header"):
        Table.restore(foreign)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        Table.restore(tmp_path / "junk.npz")


def test_pickled_arrays_are_never_loaded(tmp_path: Path) -> None:
    header = {"format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION}
    evil = tmp_path / "evil.npz"
    np.savez(evil, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
             keys=np.array([object()], dtype=object))
    with pytest.raises(ckpt.CheckpointError, match="unreadable checkpoint array"):
        Table.restore(evil)


def test_blocked_time_survives_a_restore(tmp_path: Path) -> None:
    table = queue("q", 2)
    with pytest.raises(RateLimitTimeout):
        table.sample(1, timeout=0.03)
    table.checkpoint(tmp_path / "q.npz")
    assert Table.restore(tmp_path / "q.npz").info().sample_blocked_seconds >= 0.03


def test_inconsistent_checkpoints_raise_checkpoint_error(tmp_path: Path) -> None:
    table = queue("q", 4)
    table.insert(batch([0, 1]))
    table.checkpoint(tmp_path / "q.npz")
    header, arrays = ckpt.read(tmp_path / "q.npz")
    bad_shape = {**header, "signature": {**header["signature"], "id": ["<i8", [2]]}}
    ckpt.write(tmp_path / "shape.npz", bad_shape, arrays)
    with pytest.raises(ckpt.CheckpointError, match="'id'"):
        Table.restore(tmp_path / "shape.npz")
    no_counters = {k: v for k, v in header.items() if k != "counters"}
    ckpt.write(tmp_path / "partial.npz", no_counters, arrays)
    with pytest.raises(ckpt.CheckpointError, match="malformed"):
        Table.restore(tmp_path / "partial.npz")
