"""ParamClient <-> a real parameter server on loopback: publish, fetch, subscribe, list, retries."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from herd.interfaces import StaleVersionError, VariablePublisher, VariableSource
from param_server.client import ParamClient

MiB = 1024 * 1024


def _all_dtypes() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "f16": rng.standard_normal((3, 4)).astype(np.float16),
        "f32": rng.standard_normal((2, 3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "i8": rng.integers(-128, 127, 7).astype(np.int8),
        "i16": rng.integers(-1000, 1000, 7).astype(np.int16),
        "i32": rng.integers(-(2**31), 2**31 - 1, 7).astype(np.int32),
        "i64": rng.integers(-(2**62), 2**62, 7),
        "u8": rng.integers(0, 255, (2, 2)).astype(np.uint8),
        "bool": rng.random(9) > 0.5,
        "scalar": np.array(3.25, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "strided": np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2],  # not C-contiguous
        "big_endian": np.arange(5, dtype=">f4"),
    }


def test_client_satisfies_the_interfaces(start_params):
    with ParamClient(start_params().address) as client:
        source: VariableSource = client
        publisher: VariablePublisher = client
        assert callable(source.fetch) and callable(publisher.publish)


def test_round_trip_every_dtype(start_params):
    tensors = _all_dtypes()
    with ParamClient(start_params().address, chunk_bytes=16) as client:  # many small chunks
        assert client.fetch("policy") is None  # nothing published yet: NOT_FOUND -> None
        client.publish("policy", 0, tensors)  # versions start at 0
        params = client.fetch("policy")
    assert params.version == 0 and list(params.tensors) == list(tensors)
    for key, value in tensors.items():
        got = params.tensors[key]
        assert got.dtype == value.dtype.newbyteorder("=") and got.shape == value.shape, key
        np.testing.assert_array_equal(got, value)


def test_round_trip_bfloat16_torch_tensors(start_params):
    torch = pytest.importorskip("torch")
    weights = {"bf16": torch.randn(33, 7).to(torch.bfloat16), "f32": torch.randn(4)}
    with ParamClient(start_params().address, chunk_bytes=100) as client:
        client.publish("policy", 0, weights)
        params = client.fetch("policy")
    assert isinstance(params.tensors["bf16"], torch.Tensor) and params.tensors["bf16"].dtype == torch.bfloat16
    assert torch.equal(params.tensors["bf16"], weights["bf16"])
    np.testing.assert_array_equal(params.tensors["f32"], weights["f32"].numpy())


def test_model_far_above_one_message(start_params):
    rng = np.random.default_rng(2)
    big = {f"layer{i}": rng.standard_normal((1024, 2048), dtype=np.float32) for i in range(5)}  # 40 MiB
    server = start_params()
    with ParamClient(server.address) as client:
        t0 = time.perf_counter()
        client.publish("policy", 0, big)
        t1 = time.perf_counter()
        params = client.fetch("policy", 0)
        t2 = time.perf_counter()
        assert client.list()[0].total_bytes == 40 * MiB
    print(f"\n40 MiB over loopback: publish {t1 - t0:.3f} s, fetch {t2 - t1:.3f} s")
    for key, value in big.items():
        np.testing.assert_array_equal(params.tensors[key], value)


def test_fetch_when_current_is_an_empty_answer(start_params):
    with ParamClient(start_params().address) as client:
        client.publish("policy", 4, {"w": np.ones(1 << 20, np.float32)})
        assert client.fetch("policy", min_version=4).version == 4
        t0 = time.perf_counter()
        for _ in range(20):
            assert client.fetch("policy", min_version=5) is None
        per_call = (time.perf_counter() - t0) / 20
    print(f"\nup-to-date fetch: {per_call * 1e3:.2f} ms per call")


def test_stale_publish_raises_stale_version_error(start_params):
    with ParamClient(start_params().address) as client:
        client.publish("policy", 3, {"w": np.zeros(3, np.float32)})
        for stale in (3, 2, 0):
            with pytest.raises(StaleVersionError, match="does not increase"):
                client.publish("policy", stale, {"w": np.ones(3, np.float32)})
        assert client.fetch("policy").version == 3
        np.testing.assert_array_equal(client.fetch("policy").tensors["w"], np.zeros(3, np.float32))


def test_list_reports_every_name(start_params):
    with ParamClient(start_params().address) as client:
        assert client.list() == []
        before = int(time.time() * 1000)
        client.publish("b", 1, {"w": np.zeros(4, np.float32), "v": np.zeros(2, np.int8)})
        client.publish("a", 0, {})
        infos = client.list()
    assert [(i.name, i.version, i.total_bytes, i.num_tensors) for i in infos] == [("a", 0, 0, 0), ("b", 1, 18, 2)]
    assert all(before - 1000 <= i.published_unix_ms <= before + 60_000 for i in infos)


def test_subscribe_receives_new_versions(start_params):
    server = start_params()
    with ParamClient(server.address) as client:
        got: list[int] = []
        done = threading.Event()

        def consume() -> None:
            for params in client.subscribe("policy"):  # nothing published yet: it waits
                got.append(params.version)
                assert params.tensors["w"][0] == params.version
                if params.version == 2:
                    break
            done.set()

        thread = threading.Thread(target=consume)
        thread.start()
        time.sleep(0.2)
        for version in range(3):
            client.publish("policy", version, {"w": np.full(4, version, np.float32)})
            time.sleep(0.1)
        assert done.wait(10)
        thread.join(5)
        assert got == [0, 1, 2]
        # A late subscriber starts with the latest version: older ones are skipped.
        late = client.subscribe("policy", after_version=-1)
        assert next(late).version == 2
        late.close()
        # after_version = the latest: the next one comes when published.
        after = client.subscribe("policy", after_version=2)
        threading.Timer(0.2, lambda: client.publish("policy", 7, {"w": np.full(4, 7, np.float32)})).start()
        assert next(after).version == 7
        after.close()


def test_fetch_retries_while_the_server_restarts(start_params, tmp_path):
    first = start_params(data_dir=str(tmp_path))
    with ParamClient(first.address, retry_seconds=15) as client:
        client.publish("policy", 0, {"w": np.arange(2, dtype=np.float32)})
        first.stop()
        result: list[object] = []
        thread = threading.Thread(target=lambda: result.append(client.fetch("policy")))
        thread.start()  # fails with UNAVAILABLE and backs off ...
        time.sleep(0.5)
        assert thread.is_alive()
        start_params(port=first.port, data_dir=str(tmp_path))  # ... until the server is back
        thread.join(20)
    assert result and result[0] is not None and result[0].version == 0
    np.testing.assert_array_equal(result[0].tensors["w"], [0, 1])


def test_fetch_gives_up_after_retry_seconds():
    with ParamClient("127.0.0.1:1", retry_seconds=0.3, timeout=0.5) as client:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            client.fetch("policy")
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert time.monotonic() - t0 < 5
