"""``herd status``: the services of a run, their health, and the run's counters."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from herd.launch.cluster import CLUSTER_FILE, SECRETS_DIR
from herd.options import SecurityOptions
from herd.wire.health import check_health


def cluster_status(
    redis_url: str,
    run_id: str,
    redis_pid: Optional[int] = None,
    prometheus: Optional[dict[str, Any]] = None,
    security: Optional[SecurityOptions] = None,
) -> dict[str, Any]:
    """``{"run_id", "services": [...], "counters": {...}}`` as ``herd status --json`` prints it.

    ``prometheus`` (``{"url", "pid"}`` from cluster.json) adds the Prometheus of ``herd up --prometheus``.
    ``security``: TLS settings to probe TLS servers with (health needs no token).
    """
    from herd.coord import Coordinator

    coordinator = Coordinator(redis_url, run_id)
    services: list[dict[str, Any]] = []
    try:
        info = coordinator.redis.info("server")
        redis_health = "SERVING"
        pid = int(info.get("process_id", redis_pid or 0)) or redis_pid
        host = coordinator.redis.connection_pool.connection_kwargs.get("host", "")
        port = coordinator.redis.connection_pool.connection_kwargs.get("port", "")
        records = coordinator.services()
        counters = coordinator.counters()
    except Exception:  # noqa: BLE001 - Redis down: say so instead of failing
        redis_health, pid, host, port, records, counters = "NOT_SERVING", redis_pid, "", "", [], {}
    services.append(
        {"kind": "redis", "id": "redis", "pid": pid, "grpc": f"{host}:{port}" if host else "", "metrics": "",
         "device": "", "health": redis_health}
    )
    order = {"params": 0, "replay": 1, "learner": 2, "actor": 3}
    for rec in sorted(records, key=lambda r: (order.get(r.kind, 9), r.id)):
        services.append(
            {
                "kind": rec.kind,
                "id": rec.id,
                "pid": rec.pid,
                "grpc": rec.grpc,
                "metrics": rec.metrics,
                "device": str(rec.extra.get("device", "")),  # the torch device of learners and actors
                "health": check_health(rec.grpc, security=security),
            }
        )
    if prometheus:
        address = prometheus["url"].split("://", 1)[-1]
        services.append({"kind": "prometheus", "id": "prometheus", "pid": prometheus.get("pid"), "grpc": "",
                         "metrics": address, "device": "", "health": _http_ready(prometheus["url"])})
    keys = ("env_steps", "episodes", "learner_steps")
    return {
        "run_id": run_id,
        "services": services,
        "counters": {k: int(counters.get(k, 0)) for k in keys} | {
            k: int(v) for k, v in counters.items() if k not in keys
        },
    }


def _http_ready(url: str) -> str:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2.0) as response:
            return "SERVING" if response.status == 200 else "NOT_SERVING"
    except OSError:
        return "NOT_SERVING"


def prometheus_from_run_dir(run_dir: str) -> Optional[dict[str, Any]]:
    """``{"url", "pid"}`` of the Prometheus ``herd up --prometheus`` runs, or None."""
    path = os.path.join(run_dir, CLUSTER_FILE)
    return json.load(open(path)).get("prometheus") if os.path.exists(path) else None


def from_run_dir(run_dir: str) -> tuple[str, str, Optional[int]]:
    """Redis URL, run id and Redis pid that ``herd up`` recorded in ``run_dir``."""
    path = os.path.join(run_dir, CLUSTER_FILE)
    if not os.path.exists(path):
        raise ValueError(f"--run-dir {run_dir}: no {CLUSTER_FILE} (not a run dir of herd up)")
    data = json.load(open(path))
    return data["redis_url"], data["run_id"], data.get("redis_pid")


def run_dir_security(run_dir: str) -> Optional[SecurityOptions]:
    """The operator credentials ``herd up --secure`` left in ``run_dir`` (None if it made none)."""
    directory = os.path.join(run_dir, SECRETS_DIR)
    if not os.path.isdir(directory):
        return None
    from herd.launch.tls_files import load_secure_files

    files = load_secure_files(directory)
    return SecurityOptions(tls_cert=files.client_cert, tls_key=files.client_key, tls_ca=files.ca_cert,
                           token_file=files.token_file)


def format_table(status: dict[str, Any]) -> str:
    lines = [f"run {status['run_id']}"]
    lines.append(f"{'KIND':10} {'ID':34} {'PID':>7}  {'GRPC':22} {'METRICS':22} {'DEVICE':8} HEALTH")
    for s in status["services"]:
        lines.append(
            f"{s['kind']:10} {str(s['id'])[:34]:34} {str(s['pid'] or '-'):>7}  {s['grpc'] or '-':22} "
            f"{s['metrics'] or '-':22} {s.get('device') or '-':8} {s['health']}"
        )
    lines.append("counters: " + ", ".join(f"{k}={v}" for k, v in status["counters"].items()))
    return "\n".join(lines)
