"""Every service's /metrics, for real: params, replay, learner and an actor in this process (real gRPC
on loopback, real Redis), each with its own registry and port, found through its Redis record."""

import functools
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from herd.coord import Coordinator
from herd.run_config import load_run_config
from herd import devices
from herd.launch.status import cluster_status, format_table
from herd.options import CoordOptions, ServerOptions
from herd.telemetry import metrics as hm
from herd.testing.servers import ServiceThread


def _scrape(address):
    """``{(name, frozenset(labels)): value}`` of ``http://address/metrics``."""
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, metric, **labels):
    """Sum of the samples of ``metric`` whose labels include ``labels``."""
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == metric and want <= ls]
    assert found, f"{metric}{labels} not exported"
    return sum(found)


@pytest.fixture
def cluster(redis_url, run_id, tmp_path):
    from actor_service.config import ActorServiceConfig
    from actor_service.main import serve as serve_actor
    from learner_service.config import LearnerServiceConfig
    from learner_service.main import serve as serve_learner
    from param_server.config import ParamServerConfig
    from param_server.main import serve as serve_params
    from replay_service.config import ReplayServiceConfig, TableConfig
    from replay_service.main import serve as serve_replay

    run, info = load_run_config(
        None, {"env": "gym:CartPole-v1", "actors": 1, "envs_per_actor": 4},
        {"agent": {"unroll_length": 5, "batch_size": 2}},
    )
    coord = CoordOptions(redis_url=redis_url, run_id=run_id)
    server = ServerOptions(metrics_port=0)
    services = [
        ServiceThread(serve_params, ParamServerConfig(server=server, coord=coord), name="params"),
        ServiceThread(serve_replay, ReplayServiceConfig(server=server, coord=coord,
                                                        tables=(TableConfig.queue("trajectories", 16),)),
                      name="replay"),
        ServiceThread(functools.partial(serve_learner, run=run, info=info),
                      LearnerServiceConfig(server=server, coord=coord, checkpoint_dir=str(tmp_path / "ckpt")),
                      name="learner", timeout=60),
        ServiceThread(functools.partial(serve_actor, run=run, info=info),
                      ActorServiceConfig(server=server, coord=coord), name="actor", timeout=60),
    ]
    yield redis_url, run_id, info
    for s in reversed(services):
        s.stop()


def test_every_service_serves_its_own_metrics_registered_in_redis(cluster):
    redis_url, run_id, info = cluster
    with Coordinator(redis_url, run_id) as coord:
        records = {r.kind: r for r in coord.services()}
    assert set(records) == {"params", "replay", "learner", "actor"}
    addresses = {kind: r.metrics for kind, r in records.items()}
    assert all(a.startswith("127.0.0.1:") for a in addresses.values()), addresses
    assert len(set(addresses.values())) == 4  # one endpoint per service, none shared

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        learner = _scrape(addresses["learner"])
        if _value(learner, hm.LEARNER_STEPS) >= 3:
            break
        time.sleep(0.2)
    actor, replay, params = (_scrape(addresses[k]) for k in ("actor", "replay", "params"))
    learner = _scrape(addresses["learner"])

    task = {"task": info.task}
    assert _value(actor, hm.ENV_STEPS, **task) > 0
    assert _value(actor, hm.ACTOR_UNROLLS) > 0
    assert _value(actor, hm.INFERENCE_SECONDS + "_count") > 0
    assert _value(actor, hm.EPISODES, **task) == _value(actor, hm.EPISODE_RETURN + "_count", **task)
    assert _value(actor, hm.ACTOR_PARAM_VERSION) >= 0
    assert (hm.ACTOR_POLICY_LAG, frozenset()) in actor

    assert _value(learner, hm.LEARNER_STEPS) >= 3
    assert _value(learner, hm.LEARNER_FRAMES) == 5 * 2 * _value(learner, hm.LEARNER_STEPS)
    for term in ("total", "pg", "baseline", "entropy"):  # IMPALA's: whatever the updater returns is exported
        assert (hm.LOSS, frozenset({("term", term)})) in learner
    assert (hm.LEARNER_METRIC, frozenset({("name", "mean_entropy")})) in learner
    assert _value(learner, hm.GRAD_NORM) > 0
    assert _value(learner, hm.BATCH_WAIT_SECONDS + "_count") >= 3
    assert _value(learner, hm.LEARNER_PARAM_VERSION) >= 1
    assert (hm.LEARNER_POLICY_LAG, frozenset()) in learner and (hm.LEARNER_FPS, frozenset()) in learner

    table = {"table": "trajectories"}
    assert _value(replay, hm.REPLAY_INSERTS, **table) > 0
    assert _value(replay, hm.REPLAY_SAMPLES, **table) >= 3 * 2
    assert _value(replay, hm.REPLAY_MAX_ITEMS, **table) == 16
    assert 0 <= _value(replay, hm.REPLAY_ITEMS, **table) <= 16
    assert _value(replay, hm.REPLAY_BLOCKED_SECONDS, table="trajectories", side="sample") >= 0

    assert _value(params, hm.PARAMS_VERSION, name="policy") >= 1
    assert _value(params, hm.PARAMS_BYTES_SERVED, name="policy") > 0

    # The one interceptor counts each service's own RPCs.
    ok = {"grpc_code": "OK"}
    assert _value(replay, hm.GRPC_HANDLED, grpc_service="herd.v1.ReplayService", grpc_method="Sample", **ok) >= 3
    assert _value(params, hm.GRPC_HANDLED, grpc_service="herd.v1.ParameterService", grpc_method="Publish", **ok) >= 1
    assert _value(params, hm.GRPC_HANDLED, grpc_service="herd.v1.ParameterService", grpc_method="Fetch", **ok) >= 1
    assert not any(n == hm.GRPC_HANDLED and ("grpc_service", "herd.v1.ReplayService") in ls
                   for n, ls in params)  # each endpoint shows its own service only
    for samples in (actor, learner, replay, params):
        assert _value(samples, hm.PROCESS_CPU_SECONDS) > 0
        assert all(name.startswith(hm.PREFIX) for name, _ in samples)

    # The device each one resolved (learner_device auto, actor_device cpu), in its metrics and in herd status.
    expected = devices.run_devices(load_run_config(info=info)[0])
    assert _value(learner, hm.LEARNER_DEVICE_INFO, requested="auto", device=expected["learner"]) == 1
    assert _value(actor, hm.ACTOR_DEVICE_INFO, requested="cpu", device="cpu", name="cpu") == 1

    status = cluster_status(redis_url, run_id)
    by_kind = {s["kind"]: s["metrics"] for s in status["services"] if s["kind"] != "redis"}
    assert by_kind == addresses
    device_of = {s["kind"]: s["device"] for s in status["services"]}
    assert device_of == {"redis": "", "params": "", "replay": "", "learner": expected["learner"], "actor": "cpu"}
    table = format_table(status).splitlines()
    assert "DEVICE" in table[1].split()
    assert next(line for line in table if line.startswith("learner")).split()[-2] == expected["learner"]
