"""``herd up``: a real local cluster — Redis, params, replay, learner, 2 actors as OS processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

KINDS = {"redis", "params", "replay", "learner", "actor"}


def _herd(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "herd.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _status(run_dir):
    out = subprocess.run(
        [sys.executable, "-m", "herd.cli", "status", "--run-dir", str(run_dir), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_herd_up_trains_and_reports_status(tmp_path):
    run_dir = tmp_path / "cluster"
    proc = _herd(
        "up", "--env", "gym:CartPole-v1", "--actors", "2", "--envs-per-actor", "8", "--steps", "300000",
        "--seed", "1", "--run-dir", str(run_dir), "--quiet",
    )
    status = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run_dir / "cluster.json").exists():
            s = _status(run_dir)
            # Polled while it trains: long enough (300k steps) that the run is not already ending,
            # when services leaving would report NOT_SERVING.
            if s and {x["kind"] for x in s["services"]} >= KINDS and s["counters"]["env_steps"] > 0 and all(
                    x["health"] == "SERVING" for x in s["services"]):
                status = s
                break
        time.sleep(0.5)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert status is not None, "herd status never showed the whole cluster"
    by_kind = {}
    for s in status["services"]:
        by_kind.setdefault(s["kind"], []).append(s)
        assert set(s) >= {"kind", "id", "pid", "grpc", "metrics", "health"}
    assert len(by_kind["actor"]) == 2
    assert all(s["health"] == "SERVING" for s in status["services"]), status
    pids = [s["pid"] for s in status["services"]]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids  # every service its own process
    assert set(status["counters"]) >= {"env_steps", "episodes", "learner_steps"}

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] >= 300000
    assert summary["learner_steps"] > 0
    assert summary["frames"] == summary["env_steps"] and summary["frames_per_step"] == 1  # no action repeat
    assert summary["eval_episodes"] == 10 and summary["mean_eval_return"] is not None
    assert summary["episodes"] > 0 and summary["mean_episode_return_last_100"] > 0
    assert (run_dir / "episodes.csv").exists() and (run_dir / "learning_curve.png").exists()
    assert list((run_dir / "checkpoints").glob("ckpt-*.pt"))
    # Everything stopped: no service process is left.
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_herd_up_stops_cleanly_on_sigterm(tmp_path):
    run_dir = tmp_path / "stopped"
    proc = _herd("up", "--steps", "100000000", "--actors", "1", "--run-dir", str(run_dir), "--quiet")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s = _status(run_dir) if (run_dir / "cluster.json").exists() else None
        if s and s["counters"]["learner_steps"] > 0:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 < summary["env_steps"] < 100000000
