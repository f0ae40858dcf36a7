"""Learner: published versions always increase, across checkpoint restore too."""

import numpy as np

from herd.agents.impala.learning import ImpalaUpdater
from herd.agents.impala.config import ImpalaConfig
from herd.envs.registry import EnvInfo
from learner_service.learner import Learner, latest_checkpoint
from param_server.store import ParameterStore
from replay_service.config import TableConfig, make_table

INFO = EnvInfo(observation_shape=(4,), observation_dtype="float32", num_actions=2, task="t")
CFG = ImpalaConfig.classic_control(batch_size=2, unroll_length=3)


def _fill(table, n):
    T = CFG.unroll_length + 1
    items = {
        "observation": np.zeros((T, n, 4), np.float32),
        "step_type": np.ones((T, n), np.uint8),
        "reward": np.ones((T, n), np.float32),
        "discount": np.ones((T, n), np.float32),
        "action": np.zeros((T, n), np.int64),
        "behaviour_logits": np.zeros((T, n, 2), np.float32),
        "param_version": np.zeros((1, n), np.int64),
    }
    table.insert(items)


def _learner(store):
    table = make_table(TableConfig.queue("q", 16))
    learner = Learner(ImpalaUpdater(CFG, INFO, 1000, seed=0), table, store, CFG.batch_size, sample_timeout=0)
    return learner, table


def test_versions_increase_after_restore_from_older_checkpoint(tmp_path):
    store = ParameterStore()
    learner, table = _learner(store)
    learner.publish()
    _fill(table, 4)
    learner.step()
    path = learner.save_checkpoint(str(tmp_path))
    _fill(table, 4)
    learner.step()
    assert store.fetch("policy").version == 2
    # A new learner restores step 1 while the store already has version 2.
    again, table2 = _learner(store)
    again.restore(latest_checkpoint(str(tmp_path)))
    assert path.endswith("ckpt-000000001.pt") and again.stats.steps == 1
    again.published_version = max(again.published_version, store.fetch("policy").version)
    again.publish()
    assert store.fetch("policy").version == 3
    _fill(table2, 2)
    again.step()
    assert store.fetch("policy").version == 4


def test_may_publish_false_skips_publishing():
    store = ParameterStore()
    learner, table = _learner(store)
    learner.may_publish = lambda: False
    assert learner.publish() is False
    assert store.fetch("policy") is None and learner.skipped_publishes == 1


def test_checkpoint_restores_optimizer_and_counters(tmp_path):
    store = ParameterStore()
    learner, table = _learner(store)
    learner.publish()
    for _ in range(3):
        _fill(table, 2)
        learner.step()
    learner.save_checkpoint(str(tmp_path), {"counters": {"env_steps": 123}})
    other, _ = _learner(ParameterStore())
    extra = other.restore(latest_checkpoint(str(tmp_path)))
    assert extra["counters"]["env_steps"] == 123
    assert other.stats.steps == 3 and other.stats.frames == learner.stats.frames
    assert other.updater.updates == 3
    a = learner.updater.optimizer.state_dict()["state"]
    b = other.updater.optimizer.state_dict()["state"]
    for k in a:
        for name in a[k]:
            assert np.allclose(np.asarray(a[k][name]), np.asarray(b[k][name]))
    for (ka, va), (kb, vb) in zip(learner.updater.weights().items(), other.updater.weights().items()):
        assert ka == kb and np.array_equal(va, vb)


def test_weights_come_back_to_the_host_once_per_publish_not_per_update():
    store = ParameterStore()
    learner, table = _learner(store)
    learner.publish_every = 3
    calls = []
    weights = learner.updater.weights
    learner.updater.weights = lambda: calls.append(learner.stats.steps) or weights()  # how weights reach the host
    for _ in range(7):
        _fill(table, 2)
        learner.step()
    assert calls == [3, 6] and store.fetch("policy").version == 6
