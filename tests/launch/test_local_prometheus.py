"""LocalPrometheus (herd up --prometheus): a real Prometheus follows a service to its new port."""

import json
import time
import urllib.request

import pytest

from herd.coord.registration import ServiceRecord
from herd.launch.prometheus import LocalPrometheus, find_prometheus, targets
from herd.telemetry import metrics as hm


def _actor_targets(url):
    data = json.load(urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=5))["data"]
    return [(t["labels"]["instance"], t["scrapeUrl"], t["health"])
            for t in data["activeTargets"] if t["labels"]["job"] == "actor"]


def _wait(url, want, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _actor_targets(url)
        if got == want:
            return got
        time.sleep(0.2)
    return _actor_targets(url)


def _endpoint():
    registry = hm.new_registry()
    hm.ActorMetrics(registry, "t").record_unroll(10, [], 0.0, 1)
    return hm.serve_metrics(registry, "127.0.0.1", 0)


@pytest.mark.slow  # ~11 s: Prometheus applies discovered target changes every 5 s
def test_a_restarted_service_is_scraped_on_its_new_port(tmp_path):
    prom = LocalPrometheus(str(tmp_path / "prom")).start()
    first = _endpoint()
    try:
        record = ServiceRecord(kind="actor", id="actor-h-1", grpc="127.0.0.1:1", metrics=f"127.0.0.1:{first.port}",
                               pid=1)
        assert prom.update_targets([record], {1: "actor-0"})
        assert not prom.update_targets([record], {1: "actor-0"})  # unchanged: file left alone
        url1 = f"http://127.0.0.1:{first.port}/metrics"
        assert _wait(prom.url, [("actor-0", url1, "up")]) == [("actor-0", url1, "up")]

        first.close()  # the service dies and comes back elsewhere, under the same supervisor name
        second = _endpoint()
        try:
            moved = ServiceRecord(kind="actor", id="actor-h-2", grpc="127.0.0.1:2",
                                  metrics=f"127.0.0.1:{second.port}", pid=2)
            prom.update_targets([moved], {2: "actor-0"})
            url2 = f"http://127.0.0.1:{second.port}/metrics"
            assert _wait(prom.url, [("actor-0", url2, "up")]) == [("actor-0", url2, "up")]
        finally:
            second.close()
    finally:
        pid = prom.pid
        prom.stop()
    assert not prom.alive() and pid is not None


def test_targets_skip_services_without_metrics_and_fall_back_to_the_id():
    records = [
        ServiceRecord(kind="replay", id="replay-h-7", grpc="a:1", metrics="a:2", pid=7),
        ServiceRecord(kind="params", id="params-h-8", grpc="b:1", metrics="", pid=8),  # metrics disabled
    ]
    out = targets(records, {})
    assert out["replay"] == [{"targets": ["a:2"], "labels": {"instance": "replay-h-7", "service_id": "replay-h-7"}}]
    assert out["param-server"] == [] and out["actor"] == [] and out["learner"] == []


def test_missing_prometheus_is_a_clear_error(monkeypatch, capsys):
    from herd.cli import main

    monkeypatch.delenv("HERD_PROMETHEUS", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match="prometheus not found on PATH"):
        find_prometheus()
    with pytest.raises(SystemExit) as e:
        main(["up", "--prometheus", "--steps", "10"])
    assert e.value.code == 2
    assert "prometheus not found on PATH" in capsys.readouterr().err
