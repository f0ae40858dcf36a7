"""The replay write-ahead log: record format, CRC and torn-tail detection, group commit, replay, rotation."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from replay_service import checkpoint as ckpt
from replay_service import wal
from replay_service import wal_records as wr
from replay_service.config import TableConfig, make_table
from replay_service.rate_limiters import SampleToInsertRatio
from replay_service.recovery import open_table
from replay_service.selectors import Prioritized, Uniform
from replay_service.signature import normalize_signature
from replay_service.table import Table

pytestmark = pytest.mark.timeout(60)

SIGNATURE = normalize_signature({"id": (np.int64, (2,)), "observation": (np.float32, (2, 3))})


def batch(ids: list[int]) -> dict[str, np.ndarray]:
    a = np.asarray(ids, dtype=np.int64)
    return {"id": np.broadcast_to(a, (2, len(ids))).copy(),
            "observation": (np.ones((2, len(ids), 3)) * a[None, :, None]).astype(np.float32)}


def parse(buf: bytes) -> wr.Record:
    meta_len, payload_len, crc = wr.parse_frame(buf[:wr.FRAME_BYTES])
    meta = buf[wr.FRAME_BYTES:wr.FRAME_BYTES + meta_len]
    payload = buf[wr.FRAME_BYTES + meta_len:]
    assert len(payload) == payload_len
    return wr.decode(meta, payload, crc)


def state(table: Table, path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Everything a checkpoint holds, minus wall-clock fields and the checksums of equal arrays."""
    table.checkpoint(path)
    header, arrays = ckpt.read(path)
    for d in (header, header["rate_limiter"]):
        for k in [k for k in d if k.endswith("_blocked_seconds")]:
            del d[k]
    del header["checksums"], header["wal_position"]
    return header, arrays


def assert_same_state(a: Table, b: Table, tmp_path: Path) -> None:
    ha, aa = state(a, tmp_path / "a.npz")
    hb, ab = state(b, tmp_path / "b.npz")
    assert ha == hb
    assert aa.keys() == ab.keys()
    for name in aa:
        np.testing.assert_array_equal(aa[name], ab[name], err_msg=name)


# ------------------------------------------------------------------------------ records
def test_every_record_kind_round_trips() -> None:
    item = {"id": np.array([7, 8], np.int64), "observation": np.arange(6, dtype=np.float32).reshape(2, 3)}
    insert = parse(wr.to_bytes(wr.insert_record(5, 42, 0.25, wr.encode_item(item, SIGNATURE))))
    assert (insert.kind, insert.lsn, insert.key, insert.priority) == (wr.Kind.INSERT, 5, 42, 0.25)
    arrays = wr.item_arrays(insert, SIGNATURE)
    for name in item:
        np.testing.assert_array_equal(arrays[name], item[name])
        assert arrays[name].dtype == item[name].dtype and not arrays[name].flags.writeable
    assert parse(wr.to_bytes(wr.delete_record(6, 3))) == wr.Record(wr.Kind.DELETE, 6, key=3)
    assert parse(wr.to_bytes(wr.sample_record(7, [1, 1, 2**63 + 5]))).keys == [1, 1, 2**63 + 5]
    prio = parse(wr.to_bytes(wr.priority_record(8, [4, 9], [0.0, 1e300])))
    assert (prio.keys, prio.priorities) == ([4, 9], [0.0, 1e300])
    sig = parse(wr.to_bytes(wr.json_record(wr.Kind.SIGNATURE, 9, ckpt.signature_to_json(SIGNATURE))))
    assert normalize_signature(ckpt.signature_from_json(sig.json())) == SIGNATURE
    assert parse(wr.to_bytes(wr.sample_record(10, []))).keys == []


def test_small_records_are_one_buffer_and_big_ones_keep_their_arrays_uncopied() -> None:
    small = {"id": np.array([7, 8], np.int64), "observation": np.zeros((2, 3), np.float32)}
    parts = wr.insert_record(1, 1, 1.0, wr.encode_item(small, SIGNATURE))
    assert len(parts) == 1 and parse(parts[0]).key == 1  # joined: one buffer for the flusher
    n = wr.JOIN_BELOW_BYTES // 12 + 1
    big = {"id": np.arange(n, dtype=np.int64), "observation": np.ones((n, 3), np.float32)}
    sig = normalize_signature({"id": (np.int64, (n,)), "observation": (np.float32, (n, 3))})
    parts = wr.insert_record(2, 2, 1.0, wr.encode_item(big, sig))
    assert len(parts) > 1 and any(np.shares_memory(np.asarray(p), big["observation"]) for p in parts[2:])
    np.testing.assert_array_equal(wr.item_arrays(parse(wr.to_bytes(parts)), sig)["observation"], big["observation"])


def test_crc_mismatch_is_detected_in_payload_meta_and_lengths() -> None:
    item = {"id": np.array([7, 8], np.int64), "observation": np.zeros((2, 3), np.float32)}
    good = wr.to_bytes(wr.insert_record(5, 42, 1.0, wr.encode_item(item, SIGNATURE)))
    for index in (len(good) - 1, wr.FRAME_BYTES + 3, wr.FRAME_BYTES + 12):  # payload, lsn, key
        bad = bytearray(good)
        bad[index] ^= 0x10
        with pytest.raises(wr.RecordError, match="checksum mismatch"):
            parse(bytes(bad))
    with pytest.raises(wr.RecordError, match="meta length"):
        wr.parse_frame(b"\xff" * wr.FRAME_BYTES)
    wrong = parse(good)
    with pytest.raises(wr.RecordError, match="do not match the signature"):
        wr.item_arrays(wrong, normalize_signature({"id": (np.int64, (3,))}))


def test_checksums_match_their_standard_check_values() -> None:
    # The check values of the CRC catalogue for the ASCII bytes "123456789".
    assert wr.crc32c(b"123456789") == 0xE3069283
    assert wr.MAGICS[wr.MAGIC_CRC32](b"123456789", 0) == 0xCBF43926
    data = np.arange(1000, dtype=np.float32)
    assert wr.crc32c(data) == wr.crc32c(data.tobytes()) == wr.crc32c(data.tobytes()[500:], wr.crc32c(data.tobytes()[:500]))
    assert wr.MAGIC == wr.MAGIC_CRC32C and wr.checksum is wr.crc32c  # the C extension is installed here


# ------------------------------------------------------------------------------ the log on disk
def write_log(directory: str, n: int, interval: float = 0.0) -> wal.WriteAheadLog:
    log = wal.WriteAheadLog(directory, "t", 1, fsync_interval=interval)
    log.log_signature(SIGNATURE)
    for key in range(1, n + 1):
        item = {"id": np.full(2, key, np.int64), "observation": np.full((2, 3), key, np.float32)}
        log.log_insert(key, float(key), wr.encode_item(item, SIGNATURE))
    return log


def read_all(directory: str) -> tuple[list[wr.Record], wal.LogReader]:
    reader = wal.LogReader(directory, "t")
    return list(reader.records()), reader


def test_segments_written_with_zlib_crc32_are_still_read(tmp_path: Path, monkeypatch) -> None:
    import zlib

    monkeypatch.setattr(wr, "MAGIC", wr.MAGIC_CRC32)  # as a build without CRC-32C writes (and older ones did)
    monkeypatch.setattr(wr, "checksum", zlib.crc32)
    log = write_log(str(tmp_path), 4)
    log.close()
    monkeypatch.undo()
    with open(wal.list_segments(str(tmp_path))[0][1], "rb") as f:
        assert f.read(8) == wr.MAGIC_CRC32
    records, reader = read_all(str(tmp_path))
    assert [r.key for r in records if r.kind is wr.Kind.INSERT] == [1, 2, 3, 4] and reader.problem is None
    log = wal.WriteAheadLog(str(tmp_path), "t", 7, fsync_interval=0.0)  # a new segment: CRC-32C, after the old one
    log.log_delete(1)
    log.close()
    records, reader = read_all(str(tmp_path))
    assert records[-1].kind is wr.Kind.DELETE and reader.problem is None


def test_appends_read_back_in_order_with_consecutive_lsns(tmp_path: Path) -> None:
    log = write_log(str(tmp_path), 5)
    assert log.wait_durable(log.position, timeout=5) and log.durable_position == 6
    log.close()
    records, reader = read_all(str(tmp_path))
    assert [r.lsn for r in records] == list(range(1, 7)) and reader.problem is None
    assert [r.key for r in records[1:]] == [1, 2, 3, 4, 5]
    with pytest.raises(wal.WalError, match="closed"):
        log.log_delete(1)


@pytest.mark.parametrize("cut", [1, 5, 20, 60])
def test_a_truncated_tail_is_reported_with_its_offset_and_the_rest_is_kept(tmp_path: Path, cut: int) -> None:
    write_log(str(tmp_path), 4).close()
    (_, path), = wal.list_segments(str(tmp_path))
    size = os.path.getsize(path)
    records, _ = read_all(str(tmp_path))
    with open(path, "r+b") as f:
        f.truncate(size - cut)  # kill -9 in the middle of the last append
    records_after, reader = read_all(str(tmp_path))
    assert [r.lsn for r in records_after] == [r.lsn for r in records[:-1]]
    assert reader.problem is not None and reader.problem.truncated and reader.problem.path == path
    last_record_bytes = wr.FRAME_BYTES + 9 + 16 + 16 + 24
    assert reader.problem.offset == size - last_record_bytes


def test_a_corrupt_record_stops_replay_there_and_later_segments_are_skipped(tmp_path: Path) -> None:
    log = write_log(str(tmp_path), 4)
    log.rotate()
    log.log_delete(1)
    log.close()
    (_, first), (_, second) = wal.list_segments(str(tmp_path))
    data = bytearray(Path(first).read_bytes())
    data[-30] ^= 0xFF  # inside the payload of the last insert of the first segment
    Path(first).write_bytes(bytes(data))
    records, reader = read_all(str(tmp_path))
    assert [r.lsn for r in records] == [1, 2, 3, 4]
    assert reader.problem is not None and not reader.problem.truncated
    assert "checksum mismatch" in reader.problem.message and reader.skipped_segments == [second]


def test_inserts_within_the_interval_share_one_fsync(tmp_path: Path) -> None:
    log = wal.WriteAheadLog(str(tmp_path), "t", 1, fsync_interval=0.2)
    log.log_delete(1)
    assert log.wait_durable(1, timeout=5)  # an idle log syncs its first record at once
    before = log.fsyncs
    threads = [threading.Thread(target=lambda: [log.log_delete(k) for k in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.durable_position < log.position == 201  # nothing synced yet: the interval has not passed
    assert log.wait_durable(201, timeout=5)
    assert log.fsyncs - before <= 2
    log.close()


def test_rotation_and_drop_keep_only_segments_past_the_checkpoint(tmp_path: Path) -> None:
    log = write_log(str(tmp_path), 3)
    covered = log.rotate()
    assert covered == 4
    log.log_delete(2)
    assert [first for first, _ in wal.list_segments(str(tmp_path))] == [1, 5]
    assert log.drop_through(covered) == 1
    assert [first for first, _ in wal.list_segments(str(tmp_path))] == [5]
    log.close()
    records, reader = read_all(str(tmp_path))
    assert [(r.kind, r.lsn) for r in records] == [(wr.Kind.DELETE, 5)] and reader.signature == SIGNATURE


# ------------------------------------------------------------------------------ tables
def busy_table(journal_dir: str | None, remover: Any = None) -> Table:
    limiter = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=2, error_buffer=100.0)
    table = Table("t", Prioritized(0.7), remover or Uniform(), 6, max_times_sampled=3, rate_limiter=limiter, seed=3)
    if journal_dir is not None:
        table.attach_journal(wal.WriteAheadLog(journal_dir, "t", 1, fsync_interval=0.0))
    return table


def mutate(table: Table) -> None:
    rng = np.random.default_rng(1)
    for step in range(12):
        keys = table.insert(batch([3 * step, 3 * step + 1, 3 * step + 2]), priorities=rng.random(3) + 0.1)
        table.update_priorities(keys[:2] + [10_000], [float(step), 0.5, 9.0])
        if table.size >= 2:
            table.sample(4)


def test_replaying_mixed_mutations_rebuilds_the_exact_table(tmp_path: Path) -> None:
    original = busy_table(str(tmp_path / "log"))
    mutate(original)
    assert original.info().num_deletes > 0 and original.info().num_samples > 0
    original.journal.close()
    replica = busy_table(None)
    records, reader = read_all_table(str(tmp_path / "log"))
    for record in records:
        replica.apply(record)
    assert reader.problem is None
    assert replica.log_position == original.log_position == records[-1].lsn
    assert_same_state(original, replica, tmp_path)  # keys, priorities, times sampled, counters, limiter


def read_all_table(directory: str) -> tuple[list[wr.Record], wal.LogReader]:
    reader = wal.LogReader(directory, "t")
    return list(reader.records()), reader


def wal_config(**fields: Any) -> TableConfig:
    base = dict(name="t", sampler="prioritized", remover="uniform", max_size=6, max_times_sampled=3,
                rate_limiter="sample_to_insert_ratio", samples_per_insert=2.0, min_size_to_sample=2,
                error_buffer=100.0, priority_exponent=0.7, durability="wal", wal_fsync_interval_ms=0.0)
    return TableConfig(**{**base, **fields})


def test_checkpoint_then_log_restores_the_table_and_truncates_the_log(tmp_path: Path) -> None:
    table = open_table(wal_config(), str(tmp_path), seed=3)
    mutate(table)
    table.checkpoint(tmp_path / "t.npz")  # rotates the log and drops the covered segment
    segments = wal.list_segments(str(tmp_path / "t.wal"))
    assert [first for first, _ in segments] == [table.log_position + 1]
    mutate(table)  # past the checkpoint: only in the log
    table.journal.close()
    restored = open_table(wal_config(), str(tmp_path), seed=3)
    assert restored.log_position == table.log_position
    assert_same_state(table, restored, tmp_path)
    restored.insert(batch([999]))  # and it keeps logging in a fresh segment
    restored.journal.close()
    again = open_table(wal_config(), str(tmp_path), seed=3)
    assert again.info().num_inserts == table.info().num_inserts + 1
    again.journal.close()


def test_a_torn_tail_and_a_corrupt_checkpoint_are_reported_and_skipped(tmp_path: Path, caplog) -> None:
    table = open_table(wal_config(max_size=100, max_times_sampled=0), str(tmp_path), seed=0)
    keys = [table.insert(batch([i]))[0] for i in range(10)]
    table.journal.close()
    (_, path), = wal.list_segments(str(tmp_path / "t.wal"))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 7)
    with caplog.at_level(logging.INFO, logger="herd.replay"):
        restored = open_table(wal_config(max_size=100, max_times_sampled=0), str(tmp_path), seed=0)
    torn = [r for r in caplog.records if "torn record" in r.getMessage()]
    assert torn and torn[0].path == path and torn[0].offset > 0 and torn[0].truncated
    assert restored.size == 9 and restored.log_position == keys[-2] + 1  # lsn 1 is the signature
    restored.journal.close()
    (tmp_path / "t.npz").write_bytes((tmp_path / "t.npz").read_bytes()[:-100])  # a torn checkpoint
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="herd.replay"):
        empty = open_table(wal_config(max_size=100, max_times_sampled=0), str(tmp_path), seed=0)
    assert any("checkpoint unreadable" in r.getMessage() and r.path.endswith("t.npz") for r in caplog.records)
    assert any(name.startswith("t.npz.corrupt-") for name in os.listdir(tmp_path))
    assert empty.size == 0  # the log past that checkpoint was empty: nothing else to recover
    empty.insert(batch([1]))
    empty.journal.close()


def test_checkpoint_files_carry_checksums_and_a_flipped_byte_is_caught(tmp_path: Path) -> None:
    table = make_table(TableConfig.uniform_replay("u", 10))
    table.insert(batch([1, 2, 3]))
    path = tmp_path / "u.npz"
    table.checkpoint(path)
    header, _ = ckpt.read(path)
    assert header["format_version"] == 2 and set(header["checksums"]) >= {"keys", "field_0"}
    data = bytearray(path.read_bytes())
    index = data.index(np.float32(3).tobytes() * 3)  # inside the stored observations
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError):
        Table.restore(path)


def test_durability_none_and_checkpoint_tables_have_no_log(tmp_path: Path) -> None:
    for durability in ("none", "checkpoint"):
        table = open_table(TableConfig(name=durability, durability=durability), str(tmp_path), seed=0)
        table.insert(batch([1]))
        assert table.journal is None and table.wait_durable(table.log_position, timeout=0)
    assert not any(name.endswith(".wal") for name in os.listdir(tmp_path))
