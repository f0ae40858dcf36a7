"""``herd up --secure``: a real local cluster with mutual TLS, a token and a Redis password."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import grpc
import pytest

from herd.launch.tls_files import load_secure_files
from herd.options import SecurityOptions
from herd.v1 import learner_pb2, learner_pb2_grpc, replay_pb2, replay_pb2_grpc
from herd.wire.channel import make_channel

pytestmark = pytest.mark.slow


def _status(run_dir):
    out = subprocess.run([sys.executable, "-m", "herd.cli", "status", "--run-dir", str(run_dir), "--json"],
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_herd_up_secure_trains_and_refuses_strangers(tmp_path):
    run_dir = tmp_path / "secure"
    proc = subprocess.Popen(
        [sys.executable, "-m", "herd.cli", "up", "--secure", "--env", "gym:CartPole-v1", "--actors", "1",
         "--envs-per-actor", "8", "--steps", "100000000", "--seed", "1", "--run-dir", str(run_dir), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        status = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "cluster.json").exists():
                s = _status(run_dir)
                if s and s["counters"]["learner_steps"] > 0 and {x["kind"] for x in s["services"]} >= {
                        "params", "replay", "learner", "actor"}:
                    status = s
                    break
            time.sleep(0.5)
        assert status is not None, "the secure cluster never trained"
        assert all(s["health"] == "SERVING" for s in status["services"]), status  # health over TLS, no token
        by_kind = {s["kind"]: s["grpc"] for s in status["services"]}

        files = load_secure_files(str(run_dir / "secrets"))
        operator = SecurityOptions(tls_cert=files.client_cert, tls_key=files.client_key, tls_ca=files.ca_cert,
                                   token_file=files.token_file)
        no_token = SecurityOptions(tls_cert=files.client_cert, tls_key=files.client_key, tls_ca=files.ca_cert)
        no_cert = SecurityOptions(tls_ca=files.ca_cert, token_file=files.token_file)
        replay_info = lambda sec: (lambda: replay_pb2_grpc.ReplayServiceStub(  # noqa: E731
            make_channel(by_kind["replay"], retry=False, security=sec)).Info(replay_pb2.InfoRequest(), timeout=5))
        assert _code(replay_info(operator)) == grpc.StatusCode.OK
        assert _code(replay_info(no_token)) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(replay_info(no_cert)) == grpc.StatusCode.UNAVAILABLE
        assert _code(replay_info(None)) == grpc.StatusCode.UNAVAILABLE  # plaintext
        learner = learner_pb2_grpc.LearnerServiceStub(make_channel(by_kind["learner"], retry=False, security=no_token))
        assert _code(lambda: learner.Status(learner_pb2.LearnerStatusRequest(), timeout=5)) == \
            grpc.StatusCode.UNAUTHENTICATED

        for path in (files.server_key, files.client_key, files.token_file, run_dir / "cluster.json"):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        assert stat.S_IMODE(os.stat(files.directory).st_mode) == 0o700
        assert ":" in json.loads((run_dir / "cluster.json").read_text())["redis_url"].split("@")[0][8:]  # a password
    finally:
        # Stopped by the operator once checked (a step budget could run out before the first poll).
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] > 0 and summary["learner_steps"] > 0
