"""A learner that loses its Redis lease stops publishing, and publishes again once it holds it.

Real Redis, real gRPC: replay, params, learner and one actor run their ``serve`` in
threads of this process. Another holder takes ``lease:learner`` (as after a Redis
failover, or a second learner once the first one's lease expired during an outage).
"""

import functools
import time

import pytest

from actor_service.config import ActorServiceConfig
from actor_service.main import serve as serve_actor
from herd.coord import Coordinator
from herd.run_config import load_run_config
from herd.options import CoordOptions
from herd.testing.servers import ServiceThread
from herd.v1 import learner_pb2, learner_pb2_grpc
from herd.wire.channel import make_channel
from learner_service.config import LearnerServiceConfig
from learner_service.main import serve as serve_learner
from param_server.client import ParamClient
from param_server.config import ParamServerConfig
from param_server.main import serve as serve_params
from replay_service.config import ReplayServiceConfig, TableConfig
from replay_service.main import serve as serve_replay

pytestmark = pytest.mark.slow


def _wait(what, predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_learner_without_its_lease_stops_publishing(redis_url, run_id, tmp_path):
    run, info = load_run_config(None, {"env": "gym:CartPole-v1", "actors": 1, "envs_per_actor": 4})
    coord_options = CoordOptions(redis_url=redis_url, run_id=run_id)
    services = [
        ServiceThread(serve_replay, ReplayServiceConfig(
            coord=coord_options, tables=run.replay.tables), name="replay"),
        ServiceThread(serve_params, ParamServerConfig(coord=coord_options), name="params"),
    ]
    params = ParamClient(services[1].address)
    channel = None
    try:
        learner = ServiceThread(
            functools.partial(serve_learner, run=run, info=info),
            LearnerServiceConfig(coord=coord_options, checkpoint_dir=str(tmp_path), lease_ttl_seconds=2.0),
            name="learner", timeout=120.0,
        )
        services.append(learner)
        services.append(ServiceThread(functools.partial(serve_actor, run=run, info=info),
                                      ActorServiceConfig(coord=coord_options), name="actor", timeout=60.0))
        channel = make_channel(learner.address)
        stub = learner_pb2_grpc.LearnerServiceStub(channel)

        def status():
            return stub.Status(learner_pb2.LearnerStatusRequest(), timeout=10)

        def version():
            found = params.fetch("policy")
            return found.version if found is not None else -1

        _wait("the learner to train and publish", lambda: status().learner_step >= 5 and status().holds_lease)
        assert version() > 0

        with Coordinator(redis_url, run_id) as coord:
            coord.redis.set(coord.keys.lease("learner"), "intruder", px=600_000)
            _wait("the learner to see its lease gone", lambda: status().lease_holder == "intruder")
            time.sleep(1.0)  # a publish already handed to the background sender may still land
            frozen, step = version(), status().learner_step
            _wait("the learner to keep training", lambda: status().learner_step >= step + 10)
            assert version() == frozen, "a learner without the lease published"

            coord.redis.delete(coord.keys.lease("learner"))  # the other holder is gone
            _wait("the learner to hold its lease again", lambda: status().holds_lease)
            _wait("publishing to resume", lambda: version() > frozen)
    finally:
        if channel is not None:
            channel.close()
        params.close()
        for service in reversed(services):
            service.stop()
