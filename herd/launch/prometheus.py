"""``herd up --prometheus``: a real Prometheus server that scrapes the local cluster.

Where it sits: ``herd.launch.cluster.up`` starts :class:`LocalPrometheus` before the services
and calls :meth:`LocalPrometheus.update_targets` with the run's Redis registrations as they
come and go; every service's registration carries its ``/metrics`` address, so a restarted
service (new ports) is scraped again within a second. Prometheus reads the targets from
``file_sd_configs`` files (one per job, named like the docker-compose services so the same
dashboards and recording rules work on both), evaluates ``deploy/prometheus/rules/*.yml``, and
keeps its data in ``<run-dir>/prometheus/data``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import IO, Iterable, Mapping, Optional

import yaml

from herd.coord.registration import ServiceRecord
from herd.coord.server import free_port
from herd.fsutil import atomic_write, find_executable, tail_lines
from herd.procutil import terminate

log = logging.getLogger(__name__)

JOBS = {"params": "param-server", "replay": "replay", "learner": "learner", "actor": "actor"}
"""Service kind -> Prometheus job, the docker-compose service names (deploy/prometheus/prometheus.yml)."""
RULES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "deploy", "prometheus", "rules")
"""The recording rules in the repository, shared with docker-compose."""


def find_prometheus() -> str:
    """Path of the ``prometheus`` binary (``$HERD_PROMETHEUS``, else PATH)."""
    return find_executable("prometheus", "HERD_PROMETHEUS",
                           "run `make setup` as root (it installs Debian's prometheus)")


def local_config(targets_dir: str, rule_files: Iterable[str], interval: float) -> dict:
    """The Prometheus config of a local cluster: one file_sd job per service kind."""
    every = f"{max(1, int(round(interval * 1000)))}ms"
    return {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "rule_files": list(rule_files),
        "scrape_configs": [
            {
                "job_name": job,
                "file_sd_configs": [{"files": [os.path.join(targets_dir, f"{job}.json")], "refresh_interval": "1s"}],
            }
            for job in JOBS.values()
        ],
    }


def targets(records: Iterable[ServiceRecord], names: Mapping[int, str]) -> dict[str, list[dict]]:
    """file_sd contents per job from registrations; ``names`` maps pids to supervisor names, which
    become the ``instance`` label (``actor-0`` stays ``actor-0`` across restarts)."""
    out: dict[str, list[dict]] = {job: [] for job in JOBS.values()}
    for record in sorted(records, key=lambda r: (r.kind, r.id)):
        job = JOBS.get(record.kind)
        if job is None or not record.metrics:
            continue
        instance = names.get(record.pid, record.id)
        out[job].append({"targets": [record.metrics], "labels": {"instance": instance, "service_id": record.id}})
    return out


class LocalPrometheus:
    """A ``prometheus`` child process on a free loopback port, its files under ``directory``."""

    def __init__(
        self,
        directory: str,
        *,
        interval: float = 1.0,
        rules_dir: str = RULES_DIR,
        executable: Optional[str] = None,
        startup_timeout: float = 60.0,
        log_path: Optional[str] = None,
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.interval = interval
        self.rules_dir = rules_dir
        self.executable = executable or find_prometheus()
        self.startup_timeout = startup_timeout
        self.log_path = log_path or os.path.join(self.directory, "prometheus.log")
        self.host = "127.0.0.1"
        self.port = 0
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None
        self._written: dict[str, list[dict]] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    @property
    def targets_dir(self) -> str:
        return os.path.join(self.directory, "targets")

    def start(self) -> LocalPrometheus:
        """Writes the config (rules copied into ``directory``), starts, waits until ready."""
        rules_copy = os.path.join(self.directory, "rules")
        os.makedirs(rules_copy, exist_ok=True)
        os.makedirs(self.targets_dir, exist_ok=True)
        if os.path.isdir(self.rules_dir):
            for name in sorted(os.listdir(self.rules_dir)):
                if name.endswith((".yml", ".yaml")):
                    shutil.copy(os.path.join(self.rules_dir, name), os.path.join(rules_copy, name))
        else:
            log.warning("no recording rules found, Prometheus runs without them", extra={"rules_dir": self.rules_dir})
        self.update_targets([], {})  # empty files, so Prometheus starts without warnings
        config_path = os.path.join(self.directory, "prometheus.yml")
        config = local_config(self.targets_dir, [os.path.join(rules_copy, "*.yml")], self.interval)
        with atomic_write(config_path) as f:
            f.write(yaml.safe_dump(config, sort_keys=False).encode())
        self.port = free_port(self.host)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            [self.executable, f"--config.file={config_path}",
             f"--storage.tsdb.path={os.path.join(self.directory, 'data')}",
             f"--web.listen-address={self.host}:{self.port}", "--storage.tsdb.retention.time=7d",
             "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"prometheus exited at start-up (code {code}); see {self.log_path}:\n{tail_lines(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus was not ready within {self.startup_timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def update_targets(self, records: Iterable[ServiceRecord], names: Mapping[int, str]) -> bool:
        """Rewrites the target files whose contents changed (atomically: Prometheus never reads half a file)."""
        changed = False
        for job, entries in targets(records, names).items():
            if self._written.get(job) == entries:
                continue
            with atomic_write(os.path.join(self.targets_dir, f"{job}.json")) as f:
                f.write(json.dumps(entries, indent=1).encode())
            self._written[job] = entries
            changed = True
        return changed

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Prometheus flushes its head block), SIGKILL after ``timeout``."""
        if self._proc is not None:
            terminate(self._proc, timeout)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
