"""herd.devices: the learner_device / actor_device settings and how each machine resolves them.

Resolution is checked against made-up machines (``Visible``), so the GPU cases run on the CPU.
"""

import pytest
import torch

from herd import config as hc
from herd import devices
from herd.envs.registry import EnvInfo
from herd.run_config import load_run_config

VECTOR = EnvInfo(observation_shape=(4,), observation_dtype="float32", num_actions=2, task="t")
CPU_BUILD = devices.Visible("2.13.0+cpu", None, 0, False)
TWO_GPUS = devices.Visible("2.13.0+cu128", "12.8", 2, False)
CUDA_NO_GPU = devices.Visible("2.13.0+cu128", "12.8", 0, False)
APPLE = devices.Visible("2.13.0", None, 0, True)


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names_are_accepted_by_the_run_config(name):
    run, _ = load_run_config(overrides={"learner_device": name, "actor_device": name}, info=VECTOR)
    assert run.learner_device == name and run.actor_device == name


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda0", "", "cpu:0 "])
def test_bad_device_names_are_config_errors_naming_the_key(name):
    with pytest.raises(hc.ConfigError, match=r"config key 'actor_device': .* is not a device; allowed: auto, cpu"):
        load_run_config(overrides={"actor_device": name}, info=VECTOR)


def test_defaults_learner_auto_actors_cpu():
    run, _ = load_run_config(info=VECTOR)
    assert (run.learner_device, run.actor_device) == ("auto", "cpu")


@pytest.mark.parametrize("seen, auto", [(CPU_BUILD, "cpu"), (TWO_GPUS, "cuda:0"), (CUDA_NO_GPU, "cpu"), (APPLE, "mps")])
def test_auto_takes_a_gpu_when_torch_sees_one(seen, auto):
    assert str(devices.resolve("auto", "learner_device", seen)) == auto
    assert str(devices.resolve("cpu", "learner_device", seen)) == "cpu"


def test_cuda_names_resolve_to_an_index():
    assert devices.resolve("cuda", "k", TWO_GPUS) == torch.device("cuda", 0)
    assert devices.resolve("cuda:1", "k", TWO_GPUS) == torch.device("cuda", 1)


@pytest.mark.parametrize("seen, requested, fragments", [
    (TWO_GPUS, "cuda:2", ["'cuda:2' is not available", "sees: cpu, cuda:0, cuda:1"]),
    (TWO_GPUS, "mps", ["'mps' is not available", "sees: cpu, cuda:0, cuda:1"]),
    (CPU_BUILD, "cuda", ["torch 2.13.0+cpu sees: cpu", "no CUDA in this build of torch"]),
    (CUDA_NO_GPU, "cuda:0", ["CUDA 12.8 build of torch finds no GPU", "CUDA_VISIBLE_DEVICES", "nvidia.com/gpu"]),
    (APPLE, "cuda", ["sees: cpu, mps"]),
])
def test_a_missing_device_is_a_config_error_naming_what_torch_sees(seen, requested, fragments):
    with pytest.raises(hc.ConfigError) as e:
        devices.resolve(requested, "learner_device", seen)
    message = str(e.value)
    assert message.startswith("config key 'learner_device': ") and message.endswith("see docs/devices.md")
    for fragment in fragments:
        assert fragment in message, message


def test_this_machine_is_what_torch_reports():
    seen = devices.visible()
    assert seen.torch_version == torch.__version__ and seen.cuda_build == torch.version.cuda
    assert seen.cuda_count == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    expected = "cuda:0" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    run, _ = load_run_config(info=VECTOR)
    assert devices.run_devices(run) == {"learner": expected, "actors": "cpu"}
    assert devices.device_name(torch.device("cpu")) == "cpu"
