"""Persistence: the latest version of each name survives restarts (and kill -9); corrupt files are skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from herd.interfaces import StaleVersionError
from param_server.chunks import Assembler, ParamsManifest, iter_chunks
from param_server.client import ParamClient
from param_server.persist import ParamsDir, file_name, read_file
from herd.wire.codec import encode_parts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _assembled(name: str, version: int, tensors: dict):
    manifest = ParamsManifest(name=name, version=version)
    parts = []
    for key, value in tensors.items():
        dtype, shape, data = encode_parts(value, name=key)
        manifest.tensors.add(name=key, dtype=dtype, shape=shape)
        parts.append(data)
    manifest.total_bytes = sum(map(len, parts))
    assembler = Assembler()
    for chunk in iter_chunks(manifest, parts, 1 << 20):
        assembler.add(chunk)
    return assembler.finish()


def _saved(tmp_path, name="policy", version=3):
    directory = ParamsDir(str(tmp_path))
    path = directory.save(_assembled(name, version, {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                                                      "n": np.array([7], np.int64)}), 12345)
    return directory, path


def test_save_and_read_back(tmp_path):
    _, path = _saved(tmp_path)
    stored = read_file(path)
    assert stored.published_unix_ms == 12345
    assert stored.assembled.manifest.version == 3 and stored.assembled.sizes == [24, 8]
    assert bytes(stored.assembled.data[:24]) == np.arange(6, dtype=np.float32).tobytes()
    assert os.listdir(tmp_path) == [file_name("policy")]  # no temp file left behind


def test_file_names_are_one_per_name_and_safe():
    names = ["policy", "a/b", "../x", ".", "..", "ünï", "x" * 1000, "n-x", "h-x"]
    files = [file_name(n) for n in names]
    assert len(set(files)) == len(names)
    assert all("/" not in f and len(f) < 200 and f not in (".", "..") for f in files)


def _flip(path: str, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("where", ["magic", "header length", "header crc", "header", "first data byte", "last byte"])
def test_a_flipped_byte_is_detected_and_skipped(tmp_path, where, caplog):
    directory, path = _saved(tmp_path)
    size = os.path.getsize(path)
    header_len = int.from_bytes(open(path, "rb").read()[8:12], "little")
    position = {"magic": 0, "header length": 9, "header crc": 12, "header": 16 + header_len // 2,
                "first data byte": 16 + header_len, "last byte": size - 1}[where]
    _flip(path, position)
    assert directory.load_all() == []
    assert "skipping unreadable parameter file" in caplog.text


@pytest.mark.parametrize("keep", [0, 5, 16, 40, -1])
def test_truncated_or_extended_files_are_skipped(tmp_path, keep):
    directory, path = _saved(tmp_path)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:keep] if keep >= 0 else data + b"\0")
    assert directory.load_all() == []


def test_leftover_temp_files_are_removed_and_others_ignored(tmp_path):
    directory, _ = _saved(tmp_path)
    (tmp_path / ".tmp-abc.params").write_bytes(b"half written")
    (tmp_path / "README").write_text("not a parameter file")
    loaded = directory.load_all()
    assert [s.assembled.manifest.name for s in loaded] == ["policy"]
    assert sorted(os.listdir(tmp_path)) == sorted(["README", file_name("policy")])


def test_restart_reloads_the_latest_version(start_params, tmp_path):
    torch = pytest.importorskip("torch")
    weights = {"w": np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32),
               "bf16": torch.arange(5, dtype=torch.bfloat16)}
    first = start_params(data_dir=str(tmp_path), persist_every_seconds=0)
    with ParamClient(first.address) as client:
        for version in range(4):
            client.publish("policy", version, weights)
        client.publish("other/name", 0, {"x": np.ones(3, np.uint8)})
        listed = client.list()
    first.stop()

    second = start_params(data_dir=str(tmp_path), persist_every_seconds=0)
    with ParamClient(second.address) as client:
        assert client.list() == listed  # versions, sizes and publish times survive
        params = client.fetch("policy")
        assert params.version == 3
        np.testing.assert_array_equal(params.tensors["w"], weights["w"])
        assert torch.equal(params.tensors["bf16"], weights["bf16"])
        with pytest.raises(StaleVersionError):  # still increasing across restarts
            client.publish("policy", 3, weights)
        client.publish("policy", 4, weights)
        assert client.fetch("policy", min_version=4).version == 4


def test_corrupt_file_is_skipped_at_start(start_params, tmp_path, caplog):
    first = start_params(data_dir=str(tmp_path), persist_every_seconds=0)
    with ParamClient(first.address) as client:
        client.publish("good", 2, {"w": np.ones(100, np.float32)})
        client.publish("broken", 5, {"w": np.ones(100, np.float32)})
    first.stop()
    _flip(str(tmp_path / file_name("broken")), os.path.getsize(tmp_path / file_name("broken")) - 3)
    (tmp_path / file_name("junk")).write_bytes(b"HERDPRM1" + b"\xff" * 10)

    second = start_params(data_dir=str(tmp_path), persist_every_seconds=0)
    with ParamClient(second.address) as client:
        assert [(i.name, i.version) for i in client.list()] == [("good", 2)]
        assert client.fetch("broken") is None
        client.publish("broken", 0, {"w": np.zeros(1, np.float32)})  # the name starts afresh
        assert client.fetch("broken").version == 0
    assert caplog.text.count("skipping unreadable parameter file") == 2


def _start_process(data_dir: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "param_server.main", "--port", "0", "--data-dir", data_dir, "--persist-every-seconds", "0"],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        record = json.loads(line)
        if record.get("msg") == "params serving":
            return proc, int(record["port"])
    proc.kill()
    raise AssertionError("param_server.main did not report its port")


def test_acknowledged_publish_survives_kill_9(tmp_path):
    weights = {"w": np.random.default_rng(3).standard_normal(300_000).astype(np.float32)}
    proc, port = _start_process(str(tmp_path))
    try:
        with ParamClient(f"127.0.0.1:{port}") as client:
            client.publish("policy", 0, weights)
            client.publish("policy", 1, weights)
    finally:
        proc.send_signal(signal.SIGKILL)  # no shutdown hook runs
        proc.wait(10)
        proc.stderr.close()
    proc, port = _start_process(str(tmp_path))
    try:
        with ParamClient(f"127.0.0.1:{port}") as client:
            params = client.fetch("policy")
        assert params.version == 1
        np.testing.assert_array_equal(params.tensors["w"], weights["w"])
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful stop
        assert proc.wait(10) == 0
        proc.stderr.close()


def test_background_persistence_saves_the_latest_on_shutdown(start_params, tmp_path):
    """persist_every_seconds > 0: publishes are acknowledged before the write; shutdown writes the newest."""
    first = start_params(data_dir=str(tmp_path), persist_every_seconds=30)
    with ParamClient(first.address) as client:
        for version in range(5):
            client.publish("policy", version, {"w": np.full(3, version, np.float32)})
    first.stop()
    second = start_params(data_dir=str(tmp_path), persist_every_seconds=30)
    with ParamClient(second.address) as client:
        got = client.fetch("policy")
    assert got.version == 4 and np.array_equal(got.tensors["w"], np.full(3, 4, np.float32))
