"""Both agents' updaters and policies on every device this machine has, and mixed precision.

``available()`` is ``["cpu"]`` here and adds ``cuda:0``... on a GPU machine, where the same tests
run there too; the CPU-versus-GPU comparison is the one test that needs a GPU.
"""

import dataclasses

import numpy as np
import pytest
import torch

from herd import types as ht
from herd.agents.dqn import learning as dqn_learning
from herd.agents.dqn.acting import DQNPolicy
from herd.agents.dqn.config import DQNConfig
from herd.agents.dqn.learning import DQNUpdater
from herd.agents.impala import learning as impala_learning
from herd.agents.impala.acting import ImpalaEvalPolicy, ImpalaPolicy
from herd.agents.impala.config import ImpalaConfig
from herd.agents.impala.learning import ImpalaUpdater
from herd.envs.registry import EnvInfo
from herd.testing import batches
from herd.testing.devices import available, requires_cuda

IMAGE = EnvInfo((4, 36, 36), "uint8", 5, "t")
T, B = 5, 3


def impala_batch(seed=0):
    return batches.impala_batch(IMAGE, T - 1, B, seed, lstm_size=16)


def dqn_batch(seed=0):
    return batches.dqn_batch(IMAGE, B, seed)


IMPALA = ImpalaConfig.atari(torso="shallow", use_lstm=True, lstm_size=16, batch_size=B, unroll_length=T - 1)
DQN = DQNConfig.paper(batch_size=B, min_replay_size=B, target_update_period=1)


def _on(module_or_optimizer_tensors, device):
    return all(t.device == device for t in module_or_optimizer_tensors)


@pytest.mark.parametrize("name", available())
def test_impala_learns_and_acts_on_each_device(name):
    device = torch.device(name)
    updater = ImpalaUpdater(IMPALA, IMAGE, 10_000, seed=0, device=device)
    for seed in range(2):
        metrics = updater.update(impala_batch(seed)).metrics
        assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert _on(updater.network.parameters(), device)
    assert _on((v for s in updater.optimizer.state.values() for k, v in s.items() if k != "step"), device)
    weights = updater.weights()
    assert all(isinstance(w, np.ndarray) and w.dtype == np.float32 for w in weights.values())
    for policy in (ImpalaPolicy(IMPALA, IMAGE, seed=0, device=device), ImpalaEvalPolicy(IMPALA, IMAGE, 0, device)):
        policy.load(1, weights)
        assert _on(policy.network.parameters(), device)
        obs = np.zeros((4, *IMAGE.observation_shape), np.uint8)
        out, state = policy.step(obs, np.ones(4, bool), policy.initial_state(4))
        assert out.action.shape == (4,) and out.action.dtype == np.int64
        assert all(isinstance(s, np.ndarray) and s.shape == (4, 16) for s in state)
        if ht.BEHAVIOUR_LOGITS in out.extras:
            assert out.extras[ht.BEHAVIOUR_LOGITS].shape == (4, IMAGE.num_actions)


@pytest.mark.parametrize("name", available())
def test_dqn_learns_and_acts_on_each_device(name):
    device = torch.device(name)
    updater = DQNUpdater(DQN, IMAGE, 100, seed=0, device=device)
    for seed in range(2):  # target_update_period 1: the target is copied on the device too
        result = updater.update(dqn_batch(seed))
        assert result.priorities.dtype == np.float64 and result.priorities.shape == (B,)
        assert all(np.isfinite(v) for v in result.metrics.values())
    assert _on(updater.network.parameters(), device) and _on(updater.target.parameters(), device)
    policy = DQNPolicy.for_envs(DQN, IMAGE, range(2), 2, seed=0, device=device)
    policy.load(1, updater.weights())
    out, _ = policy.step(np.zeros((2, *IMAGE.observation_shape), np.uint8), np.ones(2, bool), ())
    assert out.action.shape == (2,) and out.extras["q_values"].dtype == np.float32


def _record_dtypes(monkeypatch, module, name, seen):
    """Wraps ``module.name`` (a loss function) to record the dtypes of its tensor arguments."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        seen[name] = {k: v.dtype for k, v in {**dict(enumerate(args)), **kwargs}.items()
                      if isinstance(v, torch.Tensor) and v.is_floating_point()}
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize("precision, forward_dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_impala_precision_autocasts_the_network_and_keeps_the_loss_in_float32(monkeypatch, precision, forward_dtype):
    updater = ImpalaUpdater(dataclasses.replace(IMPALA, precision=precision), IMAGE, 10_000, seed=0)
    heads = []
    updater.network.policy.register_forward_hook(lambda m, i, out: heads.append(out.dtype))
    seen = {}
    _record_dtypes(monkeypatch, impala_learning, "impala_loss", seen)
    metrics = updater.update(impala_batch()).metrics
    assert heads == [forward_dtype]
    assert seen["impala_loss"] and set(seen["impala_loss"].values()) == {torch.float32}  # V-trace and losses
    assert all(p.dtype == torch.float32 for p in updater.network.parameters())
    assert all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("precision, forward_dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_dqn_precision_autocasts_the_networks_and_keeps_targets_and_loss_in_float32(monkeypatch, precision,
                                                                                    forward_dtype):
    updater = DQNUpdater(dataclasses.replace(DQN, precision=precision), IMAGE, 100, seed=0)
    heads = []
    for net in (updater.network, updater.target):
        net.advantage.register_forward_hook(lambda m, i, out: heads.append(out.dtype))
    seen = {}
    for name in ("double_q_target", "huber"):
        _record_dtypes(monkeypatch, dqn_learning.losses, name, seen)
    result = updater.update(dqn_batch())
    assert heads == [forward_dtype, forward_dtype]  # online (both halves in one pass) and target
    assert set(seen["double_q_target"].values()) == {torch.float32} == set(seen["huber"].values())
    assert all(p.dtype == torch.float32 for p in updater.network.parameters())
    assert np.isfinite(result.priorities).all()


@requires_cuda()
@pytest.mark.parametrize("agent", ["impala", "dqn"])
def test_the_same_seed_starts_from_the_same_weights_and_steps_alike_on_cpu_and_gpu(agent):
    def make(device):
        if agent == "impala":
            return ImpalaUpdater(IMPALA, IMAGE, 10_000, seed=3, device=device), impala_batch()
        return DQNUpdater(DQN, IMAGE, 100, seed=3, device=device), dqn_batch()

    (cpu, batch), (gpu, _) = make(torch.device("cpu")), make(torch.device("cuda", 0))
    assert all(np.array_equal(w, gpu.weights()[k]) for k, w in cpu.weights().items())
    a, b = cpu.update(batch).metrics, gpu.update(batch).metrics
    assert a.keys() == b.keys()
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), key
