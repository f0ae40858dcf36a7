"""Driving a real ``herd up`` from tests: start it, read its run dir, wait for events.

The fault-injection tests (``tests/faults``) kill the processes ``cluster.json``
names and wait — by events and counters, never by speed — until the cluster shows
it recovered. :class:`CounterLog` records what ``herd up`` reported, so a test can
check the run's progress never went backwards.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


class HerdUp:
    """``herd up ARGS --run-dir RUN_DIR --quiet`` as a child process (its output in ``RUN_DIR.out``)."""

    def __init__(self, run_dir: str, *args: str) -> None:
        self.run_dir = run_dir
        self.out_path = run_dir.rstrip("/") + ".out"
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "herd.cli", "up", *args, "--run-dir", run_dir, "--quiet"],
            stdout=self._out, stderr=subprocess.STDOUT,
        )

    def cluster(self) -> dict[str, Any]:
        """``cluster.json`` as ``herd up`` last wrote it (``{}`` before the first write)."""
        try:
            with open(os.path.join(self.run_dir, "cluster.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def status(self) -> Optional[dict[str, Any]]:
        """What ``herd status --json`` prints; None before ``cluster.json`` exists."""
        from herd.launch.status import cluster_status

        data = self.cluster()
        if not data:
            return None
        return cluster_status(data["redis_url"], data["run_id"], data.get("redis_pid"))

    def pid(self, name: str) -> Optional[int]:
        """The pid of service ``name`` (``redis`` too) that ``cluster.json`` names."""
        data = self.cluster()
        return data.get("redis_pid") if name == "redis" else data.get("services", {}).get(name)

    def output(self) -> str:
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait(self, what: str, predicate: Callable[[], Optional[T]], timeout: float, poll: float = 0.5) -> T:
        """Polls ``predicate`` until it returns something truthy; fails naming ``what`` otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"herd up exited ({self.proc.returncode}) waiting for {what}:\n{self.output()[-3000:]}")
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; status: {self.status()}")

    def stop(self, timeout: float = 180.0) -> int:
        """SIGTERM (if still running) and wait; returns herd up's exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        """Last resort of a failed test: SIGKILL herd up and every service it started."""
        data = self.cluster()
        pids = [p for p in data.get("services", {}).values() if p] + [data.get("redis_pid")]
        for pid in [self.proc.pid, *pids]:
            for sig in (signal.SIGCONT, signal.SIGKILL):  # a stopped process must not stay stopped
                try:
                    os.kill(int(pid), sig) if pid else None
                except (ProcessLookupError, PermissionError):
                    pass
        self.proc.wait(30)
        self._out.close()


def live_services(status: Optional[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The registered, SERVING services of ``kind`` in a ``herd status`` answer."""
    if not status:
        return []
    return [s for s in status["services"] if s["kind"] == kind and s["health"] == "SERVING"]


def latest_checkpoint_step(run_dir: str) -> int:
    """The learner step of the newest ``checkpoints/ckpt-*.pt`` (0 when there is none)."""
    steps = [int(m.group(1)) for p in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.pt"))
             if (m := re.search(r"ckpt-(\d+)\.pt$", p))]
    return max(steps, default=0)


class CounterLog:
    """Records the counters ``herd up`` writes to ``cluster.json`` about twice a second."""

    def __init__(self, cluster: HerdUp, every: float = 0.5) -> None:
        self.cluster = cluster
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), name="counter-log", daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            counters = self.cluster.cluster().get("counters")
            if counters:
                self.samples.append((time.monotonic(), dict(counters)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def regressions(self, *keys: str) -> list[str]:
        """Every place a counter reported by ``herd up`` went down."""
        out = []
        for (_, a), (_, b) in zip(self.samples, self.samples[1:]):
            out += [f"{k}: {a.get(k, 0)} -> {b.get(k, 0)}" for k in keys if b.get(k, 0) < a.get(k, 0)]
        return out
