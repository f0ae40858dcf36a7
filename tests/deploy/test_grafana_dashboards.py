"""deploy/grafana: panel structure of both dashboards, their freshness, and the provisioning files.

Grafana has no server here: the queries themselves are run against a live Prometheus by the slow
test in tests/launch/test_up_prometheus.py.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from herd.telemetry import dashboards, metrics as hm

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
FILES = {name: GRAFANA / "dashboards" / name for name in dashboards.DASHBOARDS}
PANEL_TYPES = {"timeseries", "stat"}


def _load(name):
    return json.loads(FILES[name].read_text())


def _recorded():
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules" / "throughput.yml").read_text())
    return {rule["record"] for group in rules["groups"] for rule in group["rules"]}


def test_dashboard_files_are_fresh():
    spec = importlib.util.spec_from_file_location("gen_dashboards", ROOT / "scripts" / "gen_dashboards.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for name, builder in dashboards.DASHBOARDS.items():
        assert FILES[name].read_text() == gen.render(builder), f"{name} is stale: python scripts/gen_dashboards.py"


@pytest.mark.parametrize("name", sorted(FILES))
def test_panels_are_well_formed(name):
    board = _load(name)
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"task", "actor"}
    for v in variables.values():
        assert v["datasource"]["uid"] == "prometheus" and v["includeAll"] and v["allValue"] == ".*"
    ids, cells = set(), set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["id"] not in ids
        ids.add(panel["id"])
        assert panel["title"] and panel["description"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        g = panel["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):  # no two panels overlap
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for t in panel["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "prometheus"
            assert t["expr"].count("(") == t["expr"].count(")") and t["expr"].count("{") == t["expr"].count("}")
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var in variables or var.startswith("__"), f"{panel['title']}: undefined ${var}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_queries_use_only_declared_metrics_and_recording_rules(name):
    declared = {v for k, v in vars(hm).items() if k.isupper() and isinstance(v, str)}
    histogram_parts = {f"{n}{s}" for n in declared for s in ("_bucket", "_sum", "_count")}
    recorded = _recorded()
    for panel in _load(name)["panels"]:
        for t in panel["targets"]:
            for used in re.findall(r"\bherd_[a-z0-9_]+", t["expr"]):
                assert used in declared | histogram_parts, f"{panel['title']}: unknown metric {used}"
            for rule in re.findall(r"\b[a-z_]*:herd_?[a-z0-9_:]+", t["expr"]):
                assert rule in recorded, f"{panel['title']}: unknown recording rule {rule}"


def test_dashboards_show_what_the_issue_asks_for():
    def exprs(name):
        return " ".join(t["expr"] for p in _load(name)["panels"] for t in p["targets"])

    throughput, training = exprs("throughput.json"), exprs("training.json")
    for metric in (hm.ENV_STEPS, hm.LEARNER_STEPS, hm.REPLAY_INSERTS, hm.REPLAY_SAMPLES, hm.REPLAY_ITEMS,
                   hm.LEARNER_POLICY_LAG, hm.ACTOR_POLICY_LAG, hm.PARAMS_VERSION, hm.ACTOR_PARAM_VERSION):
        assert metric in throughput, metric
    assert "sum by (instance) (rate(herd_env_steps_total" in throughput  # per actor
    for metric in (hm.EPISODE_RETURN, hm.LOSS, hm.GRAD_NORM, hm.GRPC_HANDLED, hm.GRPC_HANDLING_SECONDS):
        assert metric in training, metric
    assert 'grpc_code!="OK"' in training  # error rates


def test_provisioning_points_at_prometheus_and_the_dashboards():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert (source["type"], source["uid"], source["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "herd.yml").read_text())
    [provider] = dash["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/etc/grafana/dashboards"
