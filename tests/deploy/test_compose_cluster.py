"""docker-compose.yml for real: the images built on this machine (no registry), the cluster run by
the real Docker Compose v2 binary, CartPole-v1 trained in containers (slow).

Starts ``dockerd`` when no engine answers and stops only that one. Nothing here skips: `make
setup` installs the engine and debootstrap, so a missing tool fails the test. The numbers it
measures (build times, image sizes, seconds to healthy, the return) are printed as one JSON line.

A crash is SIGKILL of the container's process from the host: Docker counts ``docker kill`` as a
manual stop and never restarts such a container, whatever its restart policy.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from herd import config as hc
from herd.launch import compose
from herd.run_config import load_run_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN_CONFIG = ROOT / "deploy" / "config" / "cartpole.yaml"
ACTORS = 2
COUNTS = {"redis": 1, "param-server": 1, "replay": 1, "learner": 1, "actor": ACTORS, "prometheus": 1}
JOBS = {"param-server": 1, "replay": 1, "learner": 1, "actor": ACTORS, "prometheus": 1}
SOURCE = ["pyproject.toml", "constraints.txt", "README.md", "herd", "actor_service", "replay_service",
          "learner_service", "param_server"]
MEASURED: dict[str, Any] = {}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with compose.DockerEngine(str(tmp_path_factory.mktemp("docker") / "dockerd.log")) as e:
        yield e


@pytest.fixture(scope="module")
def images(engine):
    """scripts/images.sh: cold on a fresh machine (as in CI), else only what changed."""
    cold = compose.docker("image", "inspect", compose.LOCAL_IMAGES["HERD_IMAGE"], check=False).returncode != 0
    start = time.monotonic()
    out = subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], capture_output=True, text=True,
                         timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode == 0, out.stdout + out.stderr
    MEASURED["images_sh_seconds"] = round(time.monotonic() - start, 1)
    MEASURED["images_sh_was_cold"] = cold
    MEASURED["images_sh_output"] = out.stdout.strip().splitlines()
    MEASURED["image_mb"] = {image: compose.image_size_mb(image) for image in compose.LOCAL_IMAGES.values()}
    return compose.LOCAL_IMAGES


def _build_args() -> list[str]:
    return ["--build-arg", "BASE_IMAGE=local/debian:bookworm", "--build-arg", "WHEELHOUSE=.tools/wheelhouse",
            "--build-arg", "PIP_NO_INDEX=1"]


def test_a_code_only_change_rebuilds_in_seconds(images, tmp_path):
    """The same build from a context whose source differs in one line: every dependency layer
    comes from the cache, and the change is in the new image."""
    context = tmp_path / "context"
    context.mkdir()
    for name in SOURCE:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, context / name)
    os.makedirs(context / ".tools")
    subprocess.run(["cp", "-al", str(ROOT / ".tools" / "wheelhouse"), str(context / ".tools" / "wheelhouse")],
                   check=True)
    shutil.copytree(ROOT / "deploy" / "wheelhouse", context / "deploy" / "wheelhouse")
    shutil.copy2(ROOT / ".dockerignore", context / ".dockerignore")
    marker = f"# code-only change {secrets.token_hex(4)}"
    with open(context / "herd" / "__init__.py", "a") as f:
        f.write(f"\n{marker}\n")
    probe = "herd:code-change-probe"
    start = time.monotonic()
    out = subprocess.run(["docker", "build", "-t", probe, "-f", str(ROOT / "deploy" / "Dockerfile"), *_build_args(),
                          str(context)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "DOCKER_BUILDKIT": "0"})
    seconds = round(time.monotonic() - start, 1)
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        MEASURED["code_change_rebuild_seconds"] = seconds
        layers = {image: json.loads(compose.docker("image", "inspect", image).stdout)[0]["RootFS"]["Layers"]
                  for image in (images["HERD_IMAGE"], probe)}
        shared = next(i for i, (a, b) in enumerate(zip(*layers.values())) if a != b)
        # Only the source layers differ: base, user, and the dependencies' virtualenv are the same.
        assert shared >= 3 and len(layers[probe]) - shared <= 8, layers
        grep = compose.docker("run", "--rm", "--network", "none", "--entrypoint", "sh", probe, "-c",
                              "grep -c 'code-only change' /opt/venv/lib/python3.11/site-packages/herd/__init__.py")
        assert grep.stdout.strip() == "1"
        # The image's trimmed torch still imports, as the herd user.
        compose.docker("run", "--rm", "--network", "none", "--entrypoint", "python", probe, "-c",
                       "import torch, learner_service.main, actor_service.main; assert torch.ones(2).sum() == 2")
        assert seconds < 60, f"a code-only change took {seconds} s to build"
    finally:
        compose.docker("rmi", probe, check=False)


def _log_records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _wait(what: str, predicate: Callable[[], Any], timeout: float, poll: float = 0.5) -> Any:
    """Polls ``predicate`` until it is true; a Redis or HTTP call timing out on a loaded machine
    is one more poll, not a failure."""
    from herd.coord.coordinator import REDIS_DOWN

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (*REDIS_DOWN, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def _container(project: compose.ComposeProject, service: str) -> dict[str, Any]:
    (container,) = [c for c in project.containers() if compose.service_of(c) == service]
    return container


def _crash(project: compose.ComposeProject, service: str) -> None:
    """SIGKILL of the container's main process, as a crash or the OOM killer would end it."""
    os.kill(int(_container(project, service)["State"]["Pid"]), signal.SIGKILL)


def _back(project: compose.ComposeProject, service: str, restarts: int, timeout: float = 120.0) -> float:
    """Seconds until ``service`` restarted by its policy is healthy again."""
    start = time.monotonic()
    _wait(f"{service} restarted and healthy", lambda: (
        (c := _container(project, service))["RestartCount"] >= restarts and compose.health(c) == "healthy"), timeout)
    return round(time.monotonic() - start, 1)


def _prometheus(address: str, path: str, **params: str) -> dict[str, Any]:
    url = f"http://{address}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=15) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def _connects(argv_prefix: list[str], host: str, port: int) -> bool:
    """Whether a TCP connection to host:port opens from inside the container ``argv_prefix`` runs."""
    code = (f"import socket\ntry:\n socket.create_connection(({host!r}, {port}), timeout=3).close()\n"
            f"except OSError as e:\n print(e)\n raise SystemExit(1)\n")
    return compose.docker(*argv_prefix, "python3", "-c", code, check=False, timeout=60).returncode == 0


def _outside_address() -> tuple[str, int, bool]:
    """An address off this machine (the Debian mirror), and whether the host itself reaches it."""
    host = "deb.debian.org"
    try:
        ip = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return "192.0.2.1", 80, False  # TEST-NET-1: never routed
    try:
        socket.create_connection((ip, 80), timeout=3).close()
        return ip, 80, True
    except OSError:
        return ip, 80, False


def _first_reached(episodes_csv: Path, threshold: float) -> int | None:
    """Env steps at which the mean return of the last 100 episodes first reached ``threshold``."""
    window: collections.deque[float] = collections.deque(maxlen=100)
    with open(episodes_csv, newline="") as f:
        for row in csv.DictReader(f):
            window.append(float(row["episode_return"]))
            if len(window) == window.maxlen and sum(window) / len(window) >= threshold:
                return int(row["env_steps"])
    return None


@pytest.mark.timeout(1200)
def test_compose_cluster_trains_survives_crashes_and_is_scraped(images, tmp_path, capsys):
    run, _ = load_run_config(str(RUN_CONFIG))
    run_id = f"test-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    project = compose.ComposeProject(f"herd-test-{os.getpid()}", {
        **images, "HERD_REDIS_PASSWORD": password, "HERD_RUN_ID": run_id,
        "HERD_REDIS_PORT": "0", "PROMETHEUS_PORT": "0",
    })
    project.down()
    result: dict[str, Any] = {}
    try:
        start = time.monotonic()
        project.up({"actor": ACTORS})
        healthy = project.wait_healthy(COUNTS, timeout=300, since=start)
        MEASURED["seconds_to_healthy"] = max(healthy.values())
        MEASURED["healthy_after_seconds"] = healthy
        redis_url = f"redis://:{password}@{project.published('redis', 6379)}/0"
        prometheus = project.published("prometheus", 9090)

        def record() -> None:
            try:
                result["summary"] = compose.follow(
                    redis_url, run_id, str(tmp_path / "run"), hc.to_dict(run), run.steps, timeout=900,
                    extra=lambda: {"restarts": compose.restarts(project)})
            except BaseException as e:  # noqa: BLE001 - re-raised by the test below
                result["error"] = e

        follower = threading.Thread(target=record, daemon=True)
        follower.start()
        from herd.coord import Coordinator

        coordinator = Coordinator(redis_url, run_id, socket_timeout=10.0)

        # The learner dies after its first checkpoint; it comes back from the learner-checkpoints volume.
        _wait("a learner checkpoint", lambda: any(r.get("msg") == "checkpoint"
                                                  for r in _log_records(project.logs("learner"))), 240)
        before = _wait("the counters", coordinator.counters, 60)
        assert before.get("env_steps", 0) < run.steps * 0.8, f"too late for the crash tests: {before}"
        _crash(project, "learner")
        MEASURED["learner_back_seconds"] = _back(project, "learner", 1)
        resumed = [r for r in _log_records(project.logs("learner")) if r.get("msg") == "resumed"]
        assert resumed and int(resumed[-1]["learner_step"]) >= run.checkpoint_every, resumed
        _wait("learner steps after the learner's restart",
              lambda: coordinator.counters().get("learner_steps", 0) > before.get("learner_steps", 0) + 20, 120)

        # The replay dies after a periodic checkpoint; it restores the queue from its volume.
        periodic = len([r for r in _log_records(project.logs("replay")) if r.get("msg") == "periodic checkpoint written"])
        _wait("a replay checkpoint", lambda: len([r for r in _log_records(project.logs("replay"))
                                                  if r.get("msg") == "periodic checkpoint written"]) > periodic, 60)
        before = _wait("the counters", coordinator.counters, 60)
        assert before.get("env_steps", 0) < run.steps * 0.9, f"too late for the replay crash: {before}"
        _crash(project, "replay")
        MEASURED["replay_back_seconds"] = _back(project, "replay", 1)
        restored = [r for r in _log_records(project.logs("replay")) if r.get("msg") == "table restored"]
        assert restored and int(restored[-1]["size"]) > 0, restored
        _wait("env and learner steps after the replay's restart", lambda: (
            (now := coordinator.counters()).get("env_steps", 0) > before.get("env_steps", 0)
            and now.get("learner_steps", 0) > before.get("learner_steps", 0)), 120)

        # Prometheus scrapes every service, the restarted ones included.
        def all_up() -> bool:
            targets = _prometheus(prometheus, "/api/v1/targets")["activeTargets"]
            up = [t["labels"]["job"] for t in targets if t["health"] == "up"]
            return all(up.count(job) == n for job, n in JOBS.items()) and len(targets) == sum(JOBS.values())
        _wait("every scrape target up", all_up, 60, poll=1.0)
        def herd_metrics_of_every_service() -> bool:
            series = _prometheus(prometheus, "/api/v1/query", query='count by (job) ({__name__=~"herd_.+"})')
            return {s["metric"]["job"] for s in series["result"]} == set(JOBS) - {"prometheus"}
        _wait("herd_* metrics from every service", herd_metrics_of_every_service, 60, poll=1.0)

        # Nothing is published beyond 127.0.0.1, and no connection leaves the machine.
        containers = project.containers()
        assert {compose.service_of(c) for c in containers} == set(COUNTS)
        for c in containers:
            for bindings in (c["NetworkSettings"]["Ports"] or {}).values():
                assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), (c["Name"], bindings)
        networks = {n["Name"]: n for n in json.loads(compose.docker(
            "network", "inspect", f"{project.name}_herd", f"{project.name}_published").stdout)}
        assert networks[f"{project.name}_herd"]["Internal"]
        assert networks[f"{project.name}_published"]["Options"][
            "com.docker.network.bridge.enable_ip_masquerade"] == "false"
        for c in containers:
            on = set(c["NetworkSettings"]["Networks"])
            assert on == {f"{project.name}_herd"} or (c["NetworkSettings"]["Ports"] and on == set(networks)), (
                c["Name"], on)
        ip, port, host_reaches = _outside_address()
        MEASURED["egress_probe"] = {"address": f"{ip}:{port}", "host_reaches_it": host_reaches}
        learner = _container(project, "learner")["Id"]
        assert not _connects(["exec", learner], ip, port), "a herd container reached an address off the machine"
        assert not _connects(["run", "--rm", "--network", f"{project.name}_published", "local/debian:bookworm"],
                             ip, port), "the published network reached an address off the machine"

        follower.join(timeout=900)
        assert not follower.is_alive(), "the run did not reach its steps"
        if "error" in result:
            raise result["error"]
        summary = result["summary"]
        MEASURED["summary"] = summary
        assert summary["env_steps"] >= run.steps
        assert summary["restarts"][f"{project.name}-learner-1"] == 1
        assert summary["restarts"][f"{project.name}-replay-1"] == 1
        # CartPole-v1 is solved: the mean return of 100 consecutive episodes reaches 475 (as in the
        # README's learning tables, "first reached >= 475 at"); the final mean is reported.
        reached = _first_reached(tmp_path / "run" / "episodes.csv", 475.0)
        MEASURED["first_reached_475_at_env_steps"] = reached
        assert reached is not None, summary
    except BaseException:
        with capsys.disabled():
            print(f"\nthe containers:\n{project.diagnose()}", flush=True)
        raise
    finally:
        project.down()
        left = compose.docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project.name}")
        line = json.dumps({"compose_test": MEASURED}, default=str)
        (tmp_path / "measurements.json").write_text(line + "\n")
        with capsys.disabled():  # in CI's log too
            print(f"\n{line}", flush=True)
    assert not left.stdout.strip(), f"volumes left after down -v: {left.stdout}"
    assert not project.containers()
