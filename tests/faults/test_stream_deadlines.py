"""A streaming call whose server is killed mid-call still ends by its deadline.

With gRPC's built-in retry policy on streaming methods, a learner's ``Sample`` that was
waiting on the replay's rate limiter when the replay got ``kill -9`` hung forever after the
replay came back (grpcio 1.85): the learner stopped, the queue filled, the actors blocked.
"""

import json
import subprocess
import sys
import threading
import time

import numpy as np

from herd.coord.server import free_port
from herd.wire import channel
from herd.wire.health import check_health
from replay_service.client import ReplayClient


def _replay(port):
    return subprocess.Popen(
        [sys.executable, "-m", "replay_service.main", "--port", str(port), "--queue-size", "8"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _wait_serving(port, proc, deadline=30.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert proc.poll() is None, "replay exited at start"
        if check_health(f"127.0.0.1:{port}", timeout=1.0) == "SERVING":
            return
        time.sleep(0.1)
    raise AssertionError("replay did not come up")


def test_streaming_methods_have_no_builtin_retries():
    config = json.loads(dict(channel.channel_options())["grpc.service_config"])
    no_retry = [c for c in config["methodConfig"] if "retryPolicy" not in c]
    names = {(n["service"], n["method"]) for c in no_retry for n in c["name"]}
    assert {("herd.v1.ReplayService", "Sample"), ("herd.v1.ReplayService", "Insert"),
            ("herd.v1.ParameterService", "Fetch"), ("herd.v1.ParameterService", "Publish")} <= names


def test_sample_blocked_when_the_replay_is_killed_returns_by_its_deadline():
    port = free_port()
    proc = _replay(port)
    client = ReplayClient(f"127.0.0.1:{port}")
    try:
        _wait_serving(port, proc)
        table = client.table("trajectories")
        for round_ in range(3):  # the hang did not always come on the first kill
            outcome = []

            def sample():
                start = time.monotonic()
                try:
                    table.sample(2, timeout=3.0)  # the table is empty: blocks on the server
                    outcome.append(("batch", time.monotonic() - start))
                except TimeoutError:
                    outcome.append(("timeout", time.monotonic() - start))

            caller = threading.Thread(target=sample, daemon=True)
            caller.start()
            time.sleep(1.0)  # the call now waits inside the server
            proc.kill()
            proc.wait()
            proc = _replay(port)
            caller.join(20.0)
            assert not caller.is_alive(), f"Sample hung past its 3 s deadline (round {round_})"
            assert outcome and outcome[0][0] == "timeout"
            _wait_serving(port, proc)
        # and the same client works against the new server
        table.insert({"x": np.zeros((3, 2), np.float32)}, timeout=10.0)
        assert table.sample(2, timeout=10.0).data["x"].shape == (3, 2)
    finally:
        client.close(timeout=1.0)
        proc.kill()
        proc.wait()
