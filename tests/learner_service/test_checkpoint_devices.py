"""Checkpoints load on any device: one written on a GPU loads on a CPU and the reverse
(``torch.load(map_location="cpu", weights_only=True)``, then the updater's ``load_state_dict``
puts every tensor where its network lives)."""

import numpy as np
import pytest
import torch

from herd.agents.dqn.config import DQNConfig
from herd.agents.dqn.learning import DQNUpdater
from herd.agents.impala.config import ImpalaConfig
from herd.agents.impala.learning import ImpalaUpdater
from herd.envs.registry import EnvInfo
from herd.testing import batches
from herd.testing.devices import requires_cuda, saved_as
from learner_service.learner import Learner
from param_server.store import ParameterStore

IMAGE = EnvInfo((4, 36, 36), "uint8", 5, "t")
T, B = 4, 3
IMPALA = ImpalaConfig.atari(torso="shallow", use_lstm=True, lstm_size=16, batch_size=B, unroll_length=T)
DQN = DQNConfig.paper(batch_size=B, min_replay_size=B, target_update_period=1)


class _Batches:
    """A ``BatchSource`` that hands out the given batches in turn."""

    def __init__(self, batches):
        self.batches = list(batches)

    def sample(self, batch_size, timeout=None):
        return self.batches.pop(0)

    def update_priorities(self, keys, priorities):
        pass


def _learner(agent, device, batches=()):
    if agent == "impala":
        updater = ImpalaUpdater(IMPALA, IMAGE, 10_000, seed=1, device=torch.device(device))
    else:
        updater = DQNUpdater(DQN, IMAGE, 100, seed=1, device=torch.device(device))
    return Learner(updater, _Batches(batches), ParameterStore(), B)


def _batches(agent, n):
    return [batches.impala_batch(IMAGE, T, B, i, lstm_size=16) if agent == "impala" else batches.dqn_batch(IMAGE, B, i)
            for i in range(n)]


def _optimizer_tensors(learner):
    return [v for s in learner.updater.optimizer.state.values() for k, v in s.items() if k != "step"]


@pytest.mark.parametrize("agent", ["impala", "dqn"])
def test_a_checkpoint_written_on_a_gpu_loads_on_the_cpu(agent, tmp_path):
    trained = _learner(agent, "cpu", _batches(agent, 2))
    trained.step()
    trained.step()
    with saved_as("cuda:0"):  # every tensor of the file says cuda:0, as on a GPU learner
        path = trained.save_checkpoint(str(tmp_path))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):  # the file really names a GPU
            torch.load(path, weights_only=True)

    restored = _learner(agent, "cpu", _batches(agent, 3)[2:])
    restored.restore(path)
    assert restored.stats.steps == 2
    for key, value in trained.updater.weights().items():
        np.testing.assert_array_equal(restored.updater.weights()[key], value)
    assert all(t.device.type == "cpu" for t in _optimizer_tensors(restored))
    # It goes on exactly as the learner that wrote it would have.
    trained.source = _Batches(_batches(agent, 3)[2:])
    ours, theirs = restored.step(), trained.step()
    del ours["batch_wait_seconds"], theirs["batch_wait_seconds"]  # a clock, not the learning
    assert ours == theirs


@requires_cuda()
@pytest.mark.parametrize("agent", ["impala", "dqn"])
@pytest.mark.parametrize("saved_on, loaded_on", [("cpu", "cuda:0"), ("cuda:0", "cpu")])
def test_checkpoints_move_between_cpu_and_gpu(agent, saved_on, loaded_on, tmp_path):
    trained = _learner(agent, saved_on, _batches(agent, 2))
    trained.step()
    trained.step()
    path = trained.save_checkpoint(str(tmp_path))
    restored = _learner(agent, loaded_on, _batches(agent, 3)[2:])
    restored.restore(path)
    for key, value in trained.updater.weights().items():
        np.testing.assert_allclose(restored.updater.weights()[key], value)
    device = torch.device(loaded_on)
    assert all(p.device == device for p in restored.updater.network.parameters())
    assert all(t.device == device for t in _optimizer_tensors(restored))
    assert np.isfinite(restored.step()["total_loss"])
