"""``herd up --prometheus``: a real Prometheus scrapes a real local cluster (the issue's Done-when).

(a) every service is an ``up`` target and env steps and learner steps have positive rates;
(b) every query of every Grafana panel parses on that Prometheus and returns data.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from herd.telemetry.dashboards import DASHBOARDS

pytestmark = pytest.mark.slow

RATE_INTERVAL = "15s"  # what Grafana's $__rate_interval would be for a slower scrape; herd up scrapes every 1s
JOBS = {"param-server": 1, "replay": 1, "learner": 1, "actor": 2}


def _query(url, expr):
    """``("ok", result)``, ``("bad_data", error)`` (HTTP 400: does not parse) or ``("error", message)``."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.loads(e.read() or b"{}")
        return (body.get("errorType", f"http {e.code}"), body.get("error", ""))
    if body.get("status") != "success":
        return ("error", str(body))
    return ("ok", body["data"]["result"])


def _scalar(url, expr):
    kind, result = _query(url, expr)
    assert kind == "ok", (expr, result)
    return float(result[0]["value"][1]) if result else 0.0


def _regex(values):
    """A multi-value selection the way Grafana formats it for ``=~`` (its prometheusRegularEscape):
    regex metacharacters escaped with a doubled backslash inside the PromQL string, joined by ``|``."""
    return "(" + "|".join(re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", v) for v in values) + ")"


def _panel_queries(variables):
    for name, build in DASHBOARDS.items():
        for panel in build()["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                for var, value in variables.items():
                    expr = expr.replace(f"${var}", value)
                assert "$" not in expr, f"unsubstituted variable in {name} / {panel['title']}: {expr}"
                yield f"{name} / {panel['title']} / {target['refId']}", expr


def test_up_with_prometheus_scrapes_every_service_and_feeds_every_panel(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "herd.cli", "up", "--env", "gym:CartPole-v1", "--actors", "2",
         "--envs-per-actor", "4", "--steps", "100000000", "--seed", "1", "--run-dir", str(run_dir),
         "--quiet", "--prometheus"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    prom_pid = None
    try:
        # -- Prometheus is up, in cluster.json, and listed by herd status ----------------------
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "cluster.json").exists():
                prom = json.loads((run_dir / "cluster.json").read_text()).get("prometheus")
                url, prom_pid = (prom["url"], prom["pid"]) if prom else (None, None)
            time.sleep(0.3)
        assert url, f"no prometheus in cluster.json; herd up exited {proc.poll()}"

        # -- (a) every service an up target; env and learner steps flow -----------------------
        up, env_rate, learner_rate = {}, 0.0, 0.0
        while time.monotonic() < deadline:
            targets = json.load(urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=10))
            up = {}
            for t in targets["data"]["activeTargets"]:
                if t["health"] == "up":
                    up[t["labels"]["job"]] = up.get(t["labels"]["job"], 0) + 1
            env_rate = _scalar(url, "sum(rate(herd_env_steps_total[30s]))")
            learner_rate = _scalar(url, "sum(rate(herd_learner_steps_total[30s]))")
            if up == JOBS and env_rate > 0 and learner_rate > 0:
                break
            time.sleep(1.0)
        assert up == JOBS, f"targets up by job: {up}, expected {JOBS}"
        assert env_rate > 0 and learner_rate > 0, (env_rate, learner_rate)

        status = subprocess.run([sys.executable, "-m", "herd.cli", "status", "--run-dir", str(run_dir), "--json"],
                                capture_output=True, text=True, timeout=60)
        services = json.loads(status.stdout)["services"]
        [listed] = [s for s in services if s["kind"] == "prometheus"]
        assert f"http://{listed['metrics']}" == url and listed["health"] == "SERVING"
        assert all(s["metrics"] for s in services if s["kind"] != "redis"), services

        # -- (b) every panel query parses and returns data -----------------------------------
        assert _query(url, "sum(rate(herd_env_steps_total[15s]")[0] == "bad_data"  # the check can fail ...
        assert _query(url, "herd_no_such_metric")[1] == []  # ... both ways
        tasks = [r["metric"]["task"] for r in _query(url, "group by (task) (herd_env_steps_total)")[1]]
        actors = [r["metric"]["instance"] for r in _query(url, "group by (instance) (herd_env_steps_total)")[1]]
        assert tasks == ["gym:CartPole-v1"] and sorted(actors) == ["actor-0", "actor-1"]
        queries = dict(_panel_queries({"task": _regex(tasks), "actor": _regex(actors)}))
        empty = {}
        while True:
            empty = {}
            for where, expr in queries.items():
                kind, result = _query(url, expr)
                assert kind == "ok", f"{where}: {kind}: {result}\n{expr}"  # does not parse: fail at once
                if not result:
                    empty[where] = expr
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(1.0)  # rates need a few scrapes, recording rules an evaluation
        assert not empty, "panels without data:\n" + "\n".join(f"{w}: {e}" for w, e in empty.items())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "prometheus: http://127.0.0.1:" in err
    with pytest.raises(ProcessLookupError):  # stopped with the cluster
        os.kill(prom_pid, 0)
