"""ActorService and LearnerService over real gRPC: every method, good and bad input."""

import json

import grpc
import numpy as np
import pytest

from actor_service.loop import Actor
from actor_service.servicer import ActorServicer, EpisodeWindow
from herd.adders import SequenceAdder
from herd.agents.impala.spec import SPEC as IMPALA
from herd.agents.impala.acting import ImpalaPolicy
from herd.agents.impala.learning import ImpalaUpdater
from herd.agents.impala.config import ImpalaConfig
from herd.control import PauseGate
from herd.envs.batched import make_batched_env
from herd.envs.registry import env_spec
from herd.v1 import actor_pb2, actor_pb2_grpc, common_pb2, learner_pb2, learner_pb2_grpc
from herd.wire.channel import make_channel
from herd.wire.server import start_server
from learner_service.learner import Learner
from learner_service.servicer import LearnerServicer
from param_server.store import ParameterStore
from replay_service.config import TableConfig, make_table

INFO = env_spec("gym:CartPole-v1")
CFG = ImpalaConfig.classic_control()


@pytest.fixture
def learner_stub():
    store = ParameterStore()
    learner = Learner(ImpalaUpdater(CFG, INFO, 1000, 0), make_table(TableConfig.queue("q", 8)), store, 8)
    servicer = LearnerServicer(learner, PauseGate(), "learner-a", lambda: "learner-a", hot_fields=IMPALA.hot_fields)
    running = start_server(
        lambda s: learner_pb2_grpc.add_LearnerServiceServicer_to_server(servicer, s), ["herd.v1.LearnerService"]
    )
    channel = make_channel(f"127.0.0.1:{running.port}")
    yield learner_pb2_grpc.LearnerServiceStub(channel), learner
    channel.close()
    running.stop(0)


@pytest.fixture
def actor_stub():
    store = ParameterStore()
    policy = ImpalaPolicy(CFG, INFO, seed=0)
    actor = Actor(make_batched_env("gym:CartPole-v1", 2, 0), policy, SequenceAdder(make_table(TableConfig.queue("q", 8)), 6, 5), store)
    servicer = ActorServicer(actor, PauseGate(), EpisodeWindow())
    running = start_server(
        lambda s: actor_pb2_grpc.add_ActorServiceServicer_to_server(servicer, s), ["herd.v1.ActorService"]
    )
    channel = make_channel(f"127.0.0.1:{running.port}")
    yield actor_pb2_grpc.ActorServiceStub(channel), actor
    channel.close()
    running.stop(0)


def _code(call, request):
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=5)
    return e.value.code()


def test_learner_status_pause_resume(learner_stub):
    stub, learner = learner_stub
    status = stub.Status(learner_pb2.LearnerStatusRequest(), timeout=5)
    assert status.learner_id == "learner-a" and status.holds_lease and not status.paused
    assert stub.Pause(common_pb2.PauseRequest(reason="test"), timeout=5).was_paused is False
    assert stub.Pause(common_pb2.PauseRequest(), timeout=5).was_paused is True
    assert stub.Status(learner_pb2.LearnerStatusRequest(), timeout=5).paused
    assert stub.Resume(common_pb2.ResumeRequest(), timeout=5).was_paused is True


def test_learner_reload_config(learner_stub):
    stub, learner = learner_stub
    body = json.dumps({"agent": {"entropy_cost": 0.005, "hidden_sizes": [8]}})
    out = stub.ReloadConfig(common_pb2.ReloadConfigRequest(config_json=body), timeout=5)
    assert list(out.applied) == ["agent.entropy_cost"] and list(out.requires_restart) == ["agent.hidden_sizes"]
    assert learner.updater.config.entropy_cost == 0.005
    assert learner.updater.config.hidden_sizes == CFG.hidden_sizes  # needs a restart


@pytest.mark.parametrize(
    "body",
    [
        "",
        "{not json",
        "[1, 2]",
        json.dumps({"replay": {}}),
        json.dumps({"agent": 3}),
        json.dumps({"agent": {"learning_rate": -1}}),
        json.dumps({"agent": {"no_such_field": 1}}),
        json.dumps({"agent": {"optimizer": "sgd"}}),
    ],
)
def test_learner_reload_config_bad_input(learner_stub, body):
    stub, learner = learner_stub
    before = learner.updater.config
    assert _code(stub.ReloadConfig, common_pb2.ReloadConfigRequest(config_json=body)) == grpc.StatusCode.INVALID_ARGUMENT
    assert learner.updater.config == before
    assert stub.Status(learner_pb2.LearnerStatusRequest(), timeout=5).learner_id == "learner-a"  # still serving


def test_actor_status_pause_resume_reload(actor_stub):
    stub, actor = actor_stub
    status = stub.Status(actor_pb2.ActorStatusRequest(), timeout=5)
    assert status.num_envs == 2 and status.num_episodes_in_mean == 0 and np.isnan(status.mean_return)
    assert stub.Pause(common_pb2.PauseRequest(), timeout=5).was_paused is False
    assert stub.Resume(common_pb2.ResumeRequest(), timeout=5).was_paused is True
    out = stub.ReloadConfig(
        common_pb2.ReloadConfigRequest(config_json=json.dumps({"agent": {"pull_every": 3, "torso": "deep"}})), timeout=5
    )
    assert list(out.applied) == ["agent.pull_every"] and list(out.requires_restart) == ["agent.torso"]
    assert actor.pull_every == 3


@pytest.mark.parametrize(
    "body",
    ["", "nope", json.dumps({"agent": {"pull_every": 0}}), json.dumps({"agent": {"pull_every": "x"}}),
     json.dumps({"other": {}}), json.dumps([1])],
)
def test_actor_reload_config_bad_input(actor_stub, body):
    stub, actor = actor_stub
    assert _code(stub.ReloadConfig, common_pb2.ReloadConfigRequest(config_json=body)) == grpc.StatusCode.INVALID_ARGUMENT
    assert actor.pull_every == 1
    assert stub.Status(actor_pb2.ActorStatusRequest(), timeout=5).num_envs == 2


def test_learner_status_answers_while_redis_is_down():
    def unreachable() -> str:
        raise ConnectionError("Redis at 127.0.0.1:6379 unreachable")

    learner = Learner(ImpalaUpdater(CFG, INFO, 1000, 0), make_table(TableConfig.queue("q", 8)), ParameterStore(), 8)
    servicer = LearnerServicer(learner, PauseGate(), "learner-a", unreachable, hot_fields=IMPALA.hot_fields)
    running = start_server(
        lambda s: learner_pb2_grpc.add_LearnerServiceServicer_to_server(servicer, s), ["herd.v1.LearnerService"]
    )
    channel = make_channel(f"127.0.0.1:{running.port}")
    try:
        status = learner_pb2_grpc.LearnerServiceStub(channel).Status(learner_pb2.LearnerStatusRequest(), timeout=5)
        assert status.learner_id == "learner-a" and status.lease_holder == "" and not status.holds_lease
    finally:
        channel.close()
        running.stop(0)
