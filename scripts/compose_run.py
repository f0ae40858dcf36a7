"""``make compose``: train CartPole-v1 on the docker-compose cluster, built and run on this machine.

Builds the images (scripts/images.sh), starts redis, param-server, replay, learner, two actors
and prometheus with the real Docker Compose v2 binary, waits until every container is healthy,
records the run until ``steps`` env steps (herd.launch.compose.follow), then ``docker compose
down -v``. Progress goes to stderr; the last line on stdout is the run's summary.json.

    python scripts/compose_run.py [--run-dir runs/compose-...] [--actors 2]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from herd import config as hc  # noqa: E402
from herd.launch import compose  # noqa: E402
from herd.run_config import load_run_config  # noqa: E402

RUN_CONFIG = os.path.join(ROOT, "deploy", "config", "cartpole.yaml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default=os.path.join(ROOT, "runs", time.strftime("compose-%Y%m%d-%H%M%S")))
    parser.add_argument("--project", default="herd", help="compose project name")
    parser.add_argument("--actors", type=int, default=None, help="actor replicas (default: the run config's actors)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the run may take")
    args = parser.parse_args()

    run_config = os.environ.get("HERD_RUN_CONFIG", RUN_CONFIG)
    run, _ = load_run_config(run_config)
    actors = args.actors or run.actors
    password = secrets.token_urlsafe(18)
    engine = compose.DockerEngine(os.path.join(ROOT, ".tools", "dockerd.log")).start()
    project = None
    summary = None
    try:
        start = time.monotonic()
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "images.sh")], check=True, stdout=sys.stderr,
                       env={**os.environ, "PYTHON": sys.executable})
        print(f"compose: images ready in {time.monotonic() - start:.1f} s", file=sys.stderr)
        project = compose.ComposeProject(args.project, {
            **compose.LOCAL_IMAGES, "HERD_RUN_CONFIG": os.path.abspath(run_config),
            "HERD_REDIS_PASSWORD": password, "HERD_REDIS_PORT": "0", "PROMETHEUS_PORT": "0",
        })
        project.down()  # a clean start: no volumes of an earlier run to resume from
        start = time.monotonic()
        project.up({"actor": actors})
        healthy = project.wait_healthy({"redis": 1, "param-server": 1, "replay": 1, "learner": 1,
                                        "actor": actors, "prometheus": 1}, timeout=300, since=start)
        seconds_to_healthy = max(healthy.values())
        print(f"compose: every container healthy {seconds_to_healthy:.1f} s after `up`; prometheus on "
              f"http://{project.published('prometheus', 9090)}", file=sys.stderr)
        print(f"compose: healthy after (s): {json.dumps(healthy)}", file=sys.stderr)
        redis_url = f"redis://:{password}@{project.published('redis', 6379)}/0"
        summary = compose.follow(
            redis_url, os.environ.get("HERD_RUN_ID", "compose"), args.run_dir, hc.to_dict(run), run.steps,
            timeout=args.timeout,
            extra=lambda: {"actors": actors, "seconds_to_healthy": seconds_to_healthy,
                           "restarts": compose.restarts(project), "run_dir": args.run_dir},
        )
    except BaseException:
        if project is not None:
            print(f"compose: failed; the containers:\n{project.diagnose()}", file=sys.stderr)
        raise
    finally:
        if project is not None:
            print("compose: docker compose down -v", file=sys.stderr)
            project.down()
        engine.stop()
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
