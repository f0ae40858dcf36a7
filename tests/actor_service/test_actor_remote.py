"""The actor loop over real gRPC: unrolls reach the learner exactly as the actor recorded them,
even though the actor reuses its buffer while inserts are still in flight."""

import numpy as np
import pytest

from actor_service.loop import Actor
from actor_service.main import PipelinedWriter
from herd.adders import SequenceAdder
from herd.agents.impala.acting import ImpalaPolicy
from herd.agents.impala.config import ImpalaConfig
from herd.envs.batched import make_batched_env
from herd.envs.registry import env_spec
from herd.interfaces import Params
from herd.testing.servers import ServiceThread
from replay_service.client import ReplayClient
from replay_service.config import ReplayServiceConfig, TableConfig
from replay_service.main import serve


class _Recording:
    """Wraps a writer and keeps a private copy of every unroll the actor hands it."""

    def __init__(self, inner):
        self.inner = inner
        self.sent = []

    def insert(self, items, priorities=None, timeout=None):
        self.sent.append({k: np.array(v, copy=True) for k, v in items.items()})
        return self.inner.insert(items, priorities, timeout)


class _FixedParams:
    def __init__(self, weights):
        self.weights = weights

    def fetch(self, name, min_version=0):
        return Params(0, self.weights) if min_version <= 0 else None


@pytest.fixture
def replay_address():
    server = ServiceThread(serve, ReplayServiceConfig(tables=(TableConfig.queue("trajectories", 512),)))
    yield server.address
    server.stop()


def test_unrolls_arrive_unchanged_with_inserts_in_flight(replay_address):
    info = env_spec("gym:CartPole-v1")
    cfg = ImpalaConfig.classic_control(unroll_length=5)
    policy = ImpalaPolicy(cfg, info, seed=0)
    client = ReplayClient(replay_address)
    table = client.table("trajectories")
    writer = _Recording(PipelinedWriter(table, max_in_flight=4))
    weights = {k: v.numpy() for k, v in policy.network.state_dict().items()}
    actor = Actor(make_batched_env("gym:CartPole-v1", 4, seed=3), policy, SequenceAdder(writer, 6, 5), _FixedParams(weights))
    for _ in range(12):
        actor.run_unroll()
    writer.inner.drain(timeout=10)
    received = []
    for _ in range(12):
        batch = table.sample(4, timeout=10)
        received.append(batch.data)
    for sent, got in zip(writer.sent, received):
        assert set(sent) == set(got)
        for key in sent:
            np.testing.assert_array_equal(sent[key], got[key], err_msg=key)
    # Consecutive unrolls overlap by one step.
    np.testing.assert_array_equal(writer.sent[0]["observation"][-1], writer.sent[1]["observation"][0])
    client.close()


def test_a_writer_waiting_on_a_full_queue_stops_when_told():
    import concurrent.futures
    import threading

    from actor_service.main import PipelinedWriter, WriterStopped

    class Stuck:  # a replay whose queue is full and whose learner has gone: acks never come
        def insert_async(self, items, priorities=None):
            return concurrent.futures.Future()

    stop = threading.Event()
    writer = PipelinedWriter(Stuck(), max_in_flight=1, should_stop=stop.is_set)
    writer.insert({})
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(WriterStopped):
        writer.insert({})  # would block forever without should_stop


def test_a_writer_surfaces_an_insert_that_timed_out():
    import concurrent.futures

    from actor_service.main import PipelinedWriter
    from herd.interfaces import RateLimitTimeout

    class TimesOut:
        def insert_async(self, items, priorities=None):
            f = concurrent.futures.Future()
            f.set_exception(RateLimitTimeout("queue full for 5s"))
            return f

    writer = PipelinedWriter(TimesOut(), max_in_flight=0, should_stop=lambda: False)
    with pytest.raises(RateLimitTimeout):
        writer.insert({})
