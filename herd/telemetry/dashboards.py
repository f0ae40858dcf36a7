"""The Grafana dashboards of ``deploy/grafana/dashboards/``, built from the metric names of
:mod:`herd.telemetry.metrics` (STYLE.md 9: the dashboards use exactly those names).

``python scripts/gen_dashboards.py`` writes them; a test fails when the JSON files are stale.
Plain dicts in Grafana's dashboard JSON model (schemaVersion 39), no dependency: two
dashboards of a dozen panels each do not need a builder library. Every panel reads the
datasource provisioned with uid ``prometheus``; ``$task`` and ``$actor`` filter actors;
``$__rate_interval`` is Grafana's rate window (4 x the datasource's scrape interval).
"""

from __future__ import annotations

from typing import Any, Optional

from herd.telemetry import metrics as m

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "[$__rate_interval]"
ACTORS = 'task=~"$task", instance=~"$actor"'
"""Label matchers that follow the dashboard's $task / $actor selection."""
RECORDED_FRAMES_PER_STEP = "herd:env_frames_per_learner_step:ratio_rate1m"
RECORDED_ENV_FRAMES = "herd:env_frames:rate1m"
"""Recording rules (deploy/prometheus/rules/throughput.yml) the dashboards read."""

_WIDTH = 24  # Grafana's grid is 24 columns wide


class _Layout:
    """Places panels left to right, wrapping rows; gives each a unique id."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._row_height = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self._x + w > _WIDTH:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        self._x += w
        self._row_height = max(self._row_height, h)
        self.panels.append(panel)


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "range": True}


def _panel(kind: str, title: str, description: str, queries: list[tuple[str, str]], unit: str,
           *, decimals: Optional[int] = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                              "spanNulls": True}
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}}
    else:
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "textMode": "auto"}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }


def _variables() -> list[dict[str, Any]]:
    def variable(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1,
        }  # fmt: skip

    return [
        variable("task", "Task", f"label_values({m.ENV_STEPS}, task)"),
        variable("actor", "Actor", f'label_values({m.ENV_STEPS}{{task=~"$task"}}, instance)'),
    ]


def _dashboard(uid: str, title: str, description: str, layout: _Layout) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["herd"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": layout.panels,
    }


def throughput() -> dict[str, Any]:
    """Env frames/s (total, per actor), learner steps/s, frames per step, replay, lag, versions, costs."""
    env_rate = f"sum(rate({m.ENV_STEPS}{{{ACTORS}}}{RATE}))"
    steps_rate = f"sum(rate({m.LEARNER_STEPS}{RATE}))"
    p = _Layout()
    p.add(_panel("stat", "Env frames/s", "Environment steps per second, all selected actors together.",
                 [(env_rate, "frames/s")], "short", decimals=0), 6, 4)
    p.add(_panel("stat", "Learner steps/s", "Gradient steps per second.", [(steps_rate, "steps/s")],
                 "short", decimals=2), 6, 4)
    p.add(_panel("stat", "Frames per learner step", "Env frames produced per learner step (T x B when actors "
                 "and learner keep pace).", [(f"sum(rate({m.ENV_STEPS}{RATE})) / {steps_rate}", "frames/step")],
                 "short", decimals=0), 6, 4)
    p.add(_panel("stat", "Parameter version", "Latest version the parameter server holds.",
                 [(f"max({m.PARAMS_VERSION})", "version")], "none", decimals=0), 6, 4)
    p.add(_panel("timeseries", "Env frames/s, total and per actor",
                 "Environment steps per second: the sum over the selected actors, and each actor.",
                 [(env_rate, "total"),
                  (f"sum by (instance) (rate({m.ENV_STEPS}{{{ACTORS}}}{RATE}))", "{{instance}}"),
                  (RECORDED_ENV_FRAMES, "total, 1m (recording rule)")], "short"), 12, 8)
    p.add(_panel("timeseries", "Learner steps/s and frames/s",
                 "Gradient steps per second, and the frames they consume per second as the learner measures it.",
                 [(steps_rate, "steps/s"), (f"sum({m.LEARNER_FPS})", "frames/s (learner)")], "short"), 12, 8)
    p.add(_panel("timeseries", "Frames per learner step",
                 "Env frames per second over learner steps per second. Above T x B actors outrun the learner.",
                 [(f"sum(rate({m.ENV_STEPS}{RATE})) / {steps_rate}", "frames per step"),
                  (RECORDED_FRAMES_PER_STEP, "1m (recording rule)")], "short"), 12, 8)
    p.add(_panel("timeseries", "Replay inserts and samples",
                 "Items per second into and out of each replay table.",
                 [(f"sum by (table) (rate({m.REPLAY_INSERTS}{RATE}))", "inserts {{table}}"),
                  (f"sum by (table) (rate({m.REPLAY_SAMPLES}{RATE}))", "samples {{table}}")], "short"), 12, 8)
    p.add(_panel("timeseries", "Replay table size", "Items in each table, and its capacity.",
                 [(f"sum by (table) ({m.REPLAY_ITEMS})", "items {{table}}"),
                  (f"sum by (table) ({m.REPLAY_MAX_ITEMS})", "capacity {{table}}")], "short"), 12, 8)
    p.add(_panel("timeseries", "Time blocked by the rate limiter",
                 "Seconds per second callers waited on each table's rate limiter (1 = one caller always waiting).",
                 [(f"sum by (table, side) (rate({m.REPLAY_BLOCKED_SECONDS}{RATE}))", "{{side}} {{table}}")],
                 "s"), 12, 8)
    p.add(_panel("timeseries", "Policy lag",
                 "Versions between the weights that acted and the learner's: mean of the last batch (learner), "
                 "and how far each actor was behind at its last pull.",
                 [(f"max({m.LEARNER_POLICY_LAG})", "learner: last batch"),
                  (f'max by (instance) ({m.ACTOR_POLICY_LAG}{{instance=~"$actor"}})', "{{instance}} at pull")],
                 "none"), 12, 8)
    p.add(_panel("timeseries", "Parameter version",
                 "Latest version on the parameter server, published by the learner, and acted with by each actor.",
                 [(f"max by (name) ({m.PARAMS_VERSION})", "param server {{name}}"),
                  (f"max({m.LEARNER_PARAM_VERSION})", "learner published"),
                  (f'max by (instance) ({m.ACTOR_PARAM_VERSION}{{instance=~"$actor"}})', "{{instance}}")],
                 "none"), 12, 8)
    p.add(_panel("timeseries", "Actor inference latency",
                 "One batched policy step of an actor (all its environments): median and 99th percentile.",
                 [(f'histogram_quantile(0.5, sum by (le, instance) (rate({m.INFERENCE_SECONDS}_bucket'
                   f'{{instance=~"$actor"}}{RATE})))', "p50 {{instance}}"),
                  (f'histogram_quantile(0.99, sum by (le, instance) (rate({m.INFERENCE_SECONDS}_bucket'
                   f'{{instance=~"$actor"}}{RATE})))', "p99 {{instance}}")], "s"), 12, 8)
    p.add(_panel("timeseries", "Learner batch wait and update time",
                 "Mean time a learner step waited for its batch, and spent in the update.",
                 [(f"sum(rate({m.BATCH_WAIT_SECONDS}_sum{RATE})) / sum(rate({m.BATCH_WAIT_SECONDS}_count{RATE}))",
                   "batch wait"),
                  (f"sum(rate({m.UPDATE_SECONDS}_sum{RATE})) / sum(rate({m.UPDATE_SECONDS}_count{RATE}))",
                   "update")], "s"), 12, 8)
    p.add(_panel("timeseries", "CPU per service", "Cores each service process uses.",
                 [(f"sum by (job, instance) (rate({m.PROCESS_CPU_SECONDS}{RATE}))", "{{job}} {{instance}}")],
                 "short"), 12, 8)
    p.add(_panel("timeseries", "Memory per service", "Resident memory of each service process.",
                 [(f"sum by (job, instance) ({m.PROCESS_RESIDENT_BYTES})", "{{job}} {{instance}}")],
                 "bytes"), 12, 8)
    return _dashboard("herd-throughput", "Herd / Throughput",
                      "How fast Herd acts, learns and moves data (DESIGN.md §8).", p)


def training() -> dict[str, Any]:
    """Episode return per task, loss terms, gradient norm, learning rate, RPC rates, errors, latency."""
    handled = f"rate({m.GRPC_HANDLED}{RATE})"
    p = _Layout()
    p.add(_panel("timeseries", "Episode return per task",
                 "Mean undiscounted return of the episodes that ended in the window, and of each actor's last "
                 "100 episodes averaged over actors.",
                 [(f'sum by (task) (rate({m.EPISODE_RETURN}_sum{{{ACTORS}}}{RATE})) / '
                   f'sum by (task) (rate({m.EPISODE_RETURN}_count{{{ACTORS}}}{RATE}))', "{{task}}"),
                  (f"avg by (task) ({m.EPISODE_RETURN_MEAN}{{{ACTORS}}})", "{{task}}, last 100")], "none"), 12, 8)
    p.add(_panel("timeseries", "Episodes/s per task", "Episodes finished per second.",
                 [(f"sum by (task) (rate({m.EPISODES}{{{ACTORS}}}{RATE}))", "{{task}}")], "short"), 12, 8)
    p.add(_panel("timeseries", "Loss terms", "Terms of the IMPALA loss at the last update (summed over time and "
                 "batch): total, policy gradient, baseline, entropy.",
                 [(f"max by (term) ({m.LOSS})", "{{term}}")], "none"), 12, 8)
    p.add(_panel("timeseries", "Gradient norm", "Global gradient norm of the last update, before clipping.",
                 [(f"max({m.GRAD_NORM})", "grad norm")], "none"), 6, 8)
    p.add(_panel("timeseries", "Learning rate", "Learning rate of the last update.",
                 [(f"max({m.LEARNING_RATE})", "learning rate")], "none"), 6, 8)
    p.add(_panel("timeseries", "RPC rate by method and code", "Completed RPCs per second, per service, method "
                 "and final status code.",
                 [(f"sum by (job, grpc_method, grpc_code) ({handled})", "{{job}} {{grpc_method}} {{grpc_code}}")],
                 "reqps"), 12, 8)
    p.add(_panel("timeseries", "RPC error ratio", "Share of completed RPCs per method that ended with a code "
                 "other than OK (0 when none failed).",
                 [(f'(sum by (job, grpc_method) (rate({m.GRPC_HANDLED}{{grpc_code!="OK"}}{RATE})) / '
                   f"sum by (job, grpc_method) ({handled})) or (sum by (job, grpc_method) ({handled}) * 0)",
                   "{{job}} {{grpc_method}}")], "percentunit"), 12, 8)
    latency_calls = 'grpc_type!="bidi_stream"'  # a bidi stream's duration is its lifetime, not a latency
    p.add(_panel("timeseries", "RPC latency p50", "Median duration of unary and one-way streaming calls.",
                 [(f"histogram_quantile(0.5, sum by (le, job, grpc_method) (rate({m.GRPC_HANDLING_SECONDS}_bucket"
                   f"{{{latency_calls}}}{RATE})))", "{{job}} {{grpc_method}}")], "s"), 12, 8)
    p.add(_panel("timeseries", "RPC latency p99", "99th percentile duration of unary and one-way streaming calls.",
                 [(f"histogram_quantile(0.99, sum by (le, job, grpc_method) (rate({m.GRPC_HANDLING_SECONDS}_bucket"
                   f"{{{latency_calls}}}{RATE})))", "{{job}} {{grpc_method}}")], "s"), 12, 8)
    p.add(_panel("timeseries", "Parameter bytes served", "Bytes per second the parameter server sends to actors.",
                 [(f"sum by (name) (rate({m.PARAMS_BYTES_SERVED}{RATE}))", "{{name}}")], "Bps"), 12, 8)
    return _dashboard("herd-training", "Herd / Training",
                      "Whether Herd learns: returns, losses, gradients, and the health of its RPCs.", p)


DASHBOARDS = {"throughput.json": throughput, "training.json": training}
"""File name in deploy/grafana/dashboards/ -> builder."""
