"""``herd up``: the whole system as separate OS processes on this machine.

Starts Redis (unless ``--redis-url`` is given), then the parameter server, the
replay service, the learner and N actors — each ``herd serve <kind>``, the same
command a container runs — on free loopback ports; they find each other through
Redis. ``herd up`` supervises them, shows one progress display built from the
Redis counters, writes the same run-dir outputs as ``herd train``, and stops
everything in order when ``--steps`` is reached or on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from typing import Any, Mapping, Optional

from herd import config as hc
from herd.envs.registry import EnvInfo
from herd.fsutil import atomic_write
from herd.launch.redis_keeper import RedisKeeper
from herd.run_config import RunConfig
from herd.launch.supervisor import ServiceSpec, Supervisor
from herd.launch.tls_files import SecureFiles
from herd.telemetry.progress import Progress
from herd.telemetry.run_dir import RunRecorder
from herd.types import EpisodeRecord

log = logging.getLogger(__name__)

CLUSTER_FILE = "cluster.json"  # where herd status finds Redis and the run id
SECRETS_DIR = "secrets"  # herd up --secure: CA, certificates, keys and token (herd.launch.tls_files)


def _serve_argv(kind: str, run_dir: str, redis_url: str, run_id: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "herd.cli", "serve", kind,
        "--config", os.path.join(run_dir, "config.yaml"),
        *(["--redis-url", redis_url] if redis_url else []), "--run-id", run_id, "--host", "127.0.0.1",
        "--port", str(port),
        *extra,
    ]


@dataclasses.dataclass(frozen=True)
class ServicePlan:
    """One service of a cluster, independent of where it runs.

    ``herd up`` turns it into a process, ``docker-compose.yml`` and the Helm chart
    into containers (their tests compare against it). Listening address, Redis and
    peer addresses are the runner's business; ``dirs`` names the directory flags by
    role: a subdirectory of the run dir here, a named volume or a PVC there.
    """

    name: str  # e.g. "replay", "actor-1"
    kind: str  # replay | params | learner | actor
    args: tuple[str, ...] = ()  # further `herd serve` flags, e.g. ("--actor-index", "0")
    dirs: tuple[tuple[str, str], ...] = ()  # (flag, role), e.g. ("--data-dir", "params")


def service_plan(config: RunConfig) -> list[ServicePlan]:
    """The services of a run, in start order (stop order is the reverse)."""
    plans = [
        ServicePlan("params", "params", dirs=(("--data-dir", "params"),)),
        ServicePlan("replay", "replay", dirs=(("--checkpoint-dir", "replay"),)),
        ServicePlan("learner", "learner", dirs=(("--checkpoint-dir", "checkpoints"),)),
    ]
    plans += [ServicePlan(f"actor-{i}", "actor", ("--actor-index", str(i))) for i in range(config.actors)]
    return plans


def service_specs(
    config: RunConfig,
    run_dir: str,
    redis_url: str,
    run_id: str,
    secure: Optional[SecureFiles] = None,
    ports: Optional[Mapping[str, int]] = None,
) -> list[ServiceSpec]:
    """The services of a local cluster as processes, in start order (stop order is the reverse).

    With ``secure`` every service runs with mutual TLS and the token, and gets the Redis URL
    (which then holds a password) from its environment rather than a command line others can read.
    ``ports`` fixes each service's gRPC port by name (else 0: any free port). ``herd up``
    fixes them so a restarted service comes back where its clients still dial it: the
    clients resolve an address once, as they would a docker or Kubernetes service name.
    """
    if secure is not None:
        specs = service_specs(config, run_dir, "", run_id, ports=ports)
        for spec in specs:
            spec.argv += secure.serve_flags()
            spec.env["HERD_REDIS_URL"] = redis_url
        return specs
    specs = []
    for plan in service_plan(config):
        dirs = [arg for flag, role in plan.dirs for arg in (flag, os.path.join(run_dir, role))]
        port = (ports or {}).get(plan.name, 0)
        argv = _serve_argv(plan.kind, run_dir, redis_url, run_id, port, *dirs, *plan.args)
        specs.append(ServiceSpec(plan.name, plan.kind, argv))
    return specs


def up(
    config: RunConfig,
    info: EnvInfo,
    run_dir: str,
    *,
    redis_url: Optional[str] = None,
    progress: bool = True,
    tensorboard: bool = True,
    resume: bool = False,
    secure: bool = False,
    prometheus: bool = False,
) -> dict[str, Any]:
    """Runs a local cluster until ``config.steps`` env steps; returns the summary it writes.

    ``secure``: a throwaway CA, certificates and token in ``<run_dir>/secrets`` (new on every
    start), mutual TLS and the token on every gRPC channel, and a password on the local Redis.
    With ``prometheus``, a Prometheus server scrapes every service (``herd.launch.prometheus``).
    """
    from herd.coord import Coordinator
    from herd.coord.server import LocalRedis, free_port

    from herd.devices import run_devices

    devices = run_devices(config)  # what the learner and actors resolve on this machine (ConfigError if missing)
    os.makedirs(run_dir, exist_ok=True)
    recorder = RunRecorder(run_dir, hc.to_dict(config), tensorboard=tensorboard,
                           frames_per_step=info.frames_per_step)
    cluster_path = os.path.join(run_dir, CLUSTER_FILE)
    previous = json.load(open(cluster_path)) if resume and os.path.exists(cluster_path) else {}
    run_id = previous.get("run_id") or f"{_slug(os.path.basename(os.path.abspath(run_dir)))}-{secrets.token_hex(3)}"

    secure_files = None
    if secure:
        from herd.launch.tls_files import write_secure_files

        secure_files = write_secure_files(os.path.abspath(os.path.join(run_dir, SECRETS_DIR)))
    redis = None
    if not redis_url:
        redis = LocalRedis(log_path=os.path.abspath(os.path.join(run_dir, "logs", "redis.log")),
                           password=secrets.token_urlsafe(24) if secure else None)
        redis.start()
        redis_url = redis.url
    coordinator = Coordinator(redis_url, run_id)
    coordinator.clear_stop()
    keeper = RedisKeeper(coordinator, hc.to_dict(config), redis)  # restarts Redis, re-asserts the run's state
    keeper.start(previous.get("counters"))

    ports: dict[str, int] = {}
    for plan in service_plan(config):  # fixed for the run: a restarted service keeps its address
        while (port := free_port()) in ports.values():
            pass
        ports[plan.name] = port
    prom = None
    specs = service_specs(config, run_dir, redis_url, run_id, secure_files, ports)
    from herd.launch.status import run_dir_security  # (status imports this module)

    evaluation = ClusterEvaluation(config, info, f"127.0.0.1:{ports['params']}",
                                   run_dir_security(run_dir) if secure else None, recorder)
    supervisor = Supervisor(specs, os.path.join(run_dir, "logs"))
    stop = threading.Event()
    previous_handlers = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}

    def write_cluster_file(counters: dict[str, int]) -> None:
        data = {
            "run_id": run_id,
            "redis_url": redis_url,
            "redis_pid": redis.pid if redis is not None else None,
            "supervisor_pid": os.getpid(),
            "services": {name: supervisor.pid(name) for name in supervisor.children},
            "restarts": {**supervisor.restarts(), "redis": keeper.restarts},
            "counters": counters,
            "secure": secure,
        }
        if prom is not None:
            data["prometheus"] = {"url": prom.url, "pid": prom.pid}
        with atomic_write(cluster_path) as f:  # 0600 (mkstemp): the Redis URL may hold a password
            f.write(json.dumps(data, indent=2).encode())

    display = Progress(config.steps, enabled=progress, frames_per_step=info.frames_per_step)
    start = time.monotonic()
    first_step_time: Optional[float] = None
    first_step_count = 0
    counters: dict[str, int] = {}
    last_id = "0-0"
    last_file_write = 0.0
    try:
        if prometheus:
            from herd.launch.prometheus import LocalPrometheus

            prom = LocalPrometheus(os.path.join(run_dir, "prometheus"),
                                   log_path=os.path.abspath(os.path.join(run_dir, "logs", "prometheus.log"))).start()
            print(f"prometheus: {prom.url}", file=sys.stderr, flush=True)
        supervisor.start_all()
        evaluation.start()
        while not stop.is_set():
            supervisor.poll()
            try:
                counters = keeper.poll() or counters
                records, last_id = coordinator.read_episodes(last_id, count=10_000)
            except Exception as e:  # noqa: BLE001 - Redis restarting: the keeper brings it back
                log.warning("redis unreachable", extra={"error": str(e)})
                stop.wait(0.5)
                continue
            env_steps = int(counters.get("env_steps", 0))
            if first_step_time is None and env_steps > 0:
                first_step_time, first_step_count = time.monotonic(), env_steps
            for r in records:
                # Episodes are stamped with the run's env-step count when they are read
                # (at most one report interval, 0.5 s, late).
                recorder.episode(EpisodeRecord(env_steps, r.episode_return, r.episode_length, r.task, r.actor_id))
            now = time.monotonic()
            if now - last_file_write > 1.0:
                write_cluster_file(counters)
                last_file_write = now
                if prom is not None:  # restarted services come back on new ports: keep scraping them
                    _update_scrape_targets(prom, coordinator, supervisor)
            display.update(env_steps, int(counters.get("learner_steps", 0)), recorder.mean_return())
            evaluation.env_steps = env_steps
            if env_steps >= config.steps:
                break
            stop.wait(0.2)
        end = time.monotonic()
    finally:
        display.close()
        try:
            coordinator.request_stop()
        except Exception:  # noqa: BLE001
            pass
        # Actors first (no new data), then the learner (final checkpoint), then the stores.
        supervisor.stop([s.name for s in specs if s.kind == "actor"])
        supervisor.stop(["learner"], timeout=60.0)
        evaluation.finish()  # the final round, with the weights the learner published last
        replay_tables = _replay_summary(config, f"127.0.0.1:{ports['replay']}",
                                        evaluation.security)
        supervisor.stop(["replay", "params"], timeout=30.0)
        try:
            counters = keeper.poll() or counters
            records, last_id = coordinator.read_episodes(last_id, count=100_000)
            for r in records:
                recorder.episode(
                    EpisodeRecord(int(counters.get("env_steps", 0)), r.episode_return, r.episode_length, r.task, r.actor_id)
                )
        except Exception:  # noqa: BLE001
            pass
        write_cluster_file(counters)
        supervisor.close()
        if prom is not None:
            prom.stop()
        if redis is not None:
            redis.stop()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)

    env_steps = int(counters.get("env_steps", 0))
    wall = end - start
    steady = None
    if first_step_time is not None and end > first_step_time:
        steady = round((env_steps - first_step_count) / (end - first_step_time), 1)
    return recorder.finish(
        {
            "mode": "up",
            "agent": config.agent_name,
            "env": config.env,
            "seed": config.seed,
            "run_id": run_id,
            "actors": config.actors,
            "env_steps": env_steps,
            "learner_steps": int(counters.get("learner_steps", 0)),
            "wall_seconds": round(wall, 3),
            "env_steps_per_second": round(env_steps / max(wall, 1e-9), 1),
            "steady_env_steps_per_second": steady,
            "startup_seconds": round(first_step_time - start, 3) if first_step_time else None,
            "restarts": {**supervisor.restarts(), "redis": keeper.restarts},
            "replay_tables": replay_tables,
            "devices": devices,
        }
    )


def _replay_summary(config: RunConfig, address: str, security: Any) -> dict[str, Any]:
    """Each table's counters as the replay service itself reports them (``Info``), before it stops."""
    from herd.tables import table_summary
    from replay_service.client import ReplayClient

    try:
        with ReplayClient(address, security=security) as client:
            infos = {t.name: t for t in client.info()}
    except Exception as e:  # noqa: BLE001 - replay down at the end: the summary goes without
        log.warning("cannot read the replay's counters", extra={"error": str(e)})
        return {}
    return {t.name: table_summary(t, infos[t.name].size, infos[t.name].num_inserts, infos[t.name].num_samples)
            for t in config.replay.tables if t.name in infos}


class ClusterEvaluation:
    """``herd up``'s evaluation rounds (``herd.evaluation``), in a thread of the supervisor process.

    Rounds run every ``eval_every`` env steps of the run's counters, with the newest weights of
    the parameter server, and once more after the learner has stopped (``finish``), so the last
    round scores the final weights. Running them here rather than in an actor keeps acting at
    full speed and lets the final round wait for the learner's last publish.
    """

    def __init__(self, config: RunConfig, info: EnvInfo, params_address: str, security: Any, recorder: RunRecorder):
        self.config = config
        self.info = info
        self.params_address = params_address
        self.security = security
        self.recorder = recorder
        self.env_steps = 0  # set by the supervisor loop from the Redis counters
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="evaluation", daemon=True)
        self._evaluator: Any = None
        self._client: Any = None

    def _ensure(self) -> Any:
        if self._evaluator is None:
            from herd.agents import registry
            from herd.evaluation import Evaluator
            from param_server.client import ParamClient

            from herd import devices

            spec = registry.get(self.config.agent_name)
            device = devices.resolve(self.config.actor_device, "actor_device")
            self._client = ParamClient(self.params_address, security=self.security)
            self._evaluator = Evaluator(
                self.config.env, spec.make_eval_policy(self.config.agent, self.info, self.config.seed, device),
                self._client, self.config.eval_episodes, self.config.seed, vectorized=self.config.vectorized_env,
            )
        return self._evaluator

    def _round(self) -> None:
        import torch

        # The run's intra-op threads (1 by default), set in the thread that plays: with torch's
        # default (one per core) a 500-step CartPole round costs 3.3 CPU-s of spinning threads
        # that the busy actors need, with one thread 0.15 s (docs/benchmarks/throughput.md).
        torch.set_num_threads(self.config.torch_threads)
        with self._lock:
            evaluator = self._ensure()
            self.recorder.evaluation(evaluator.run(self.env_steps))

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from herd.evaluation import eval_due

        rounds = 0
        while not self._stop.wait(0.5):
            if eval_due(self.env_steps, self.config.eval_every, rounds):
                rounds = self.env_steps // self.config.eval_every
                try:
                    self._round()
                except Exception as e:  # noqa: BLE001 - params restarting: the next round tries again
                    log.warning("evaluation round failed", extra={"error": str(e)})

    def finish(self) -> None:
        """Stops the periodic rounds and plays the final one."""
        self._stop.set()
        self._thread.join(timeout=300.0)
        try:
            self._round()
        except Exception as e:  # noqa: BLE001 - no weights reachable: the summary says no evaluation
            log.warning("final evaluation round failed", extra={"error": str(e)})
        if self._evaluator is not None:
            self._evaluator.close()
            self._client.close()


def _update_scrape_targets(prom: Any, coordinator: Any, supervisor: Supervisor) -> None:
    try:
        records = coordinator.services()
    except Exception as e:  # noqa: BLE001 - Redis restarting: keep the targets Prometheus has
        log.warning("cannot read registrations for Prometheus", extra={"error": str(e)})
        return
    prom.update_targets(records, {supervisor.pid(name): name for name in supervisor.children})


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")
    return out[:40] or "run"
