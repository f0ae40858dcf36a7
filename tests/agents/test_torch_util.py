"""herd.agents.torch_util: batches onto a device (one copy, pinned + non_blocking on CUDA), an
update's scalars and the published weights back to the host, mixed precision.

The CPU path runs everywhere; pinned memory exists only with a CUDA GPU, so those tests skip
(with the reason) elsewhere.
"""

import numpy as np
import pytest
import torch

from herd.agents import torch_util as tu
from herd.interfaces import SampledBatch
from herd.testing.devices import requires_cuda


def _read_only(array):
    array = np.ascontiguousarray(array)
    array.setflags(write=False)  # as batches decoded off the wire are
    return array


def _batch():
    rng = np.random.default_rng(0)
    return {
        "observation": _read_only(rng.integers(0, 255, (3, 2, 4, 8, 8), dtype=np.uint8)),
        "step_type": _read_only(np.array([[0, 1], [1, 1], [2, 0]], np.uint8)),
        "reward": rng.normal(size=(3, 2)).astype(np.float32),  # writable
        "param_version": np.zeros((1, 2), np.int64),  # not asked for: not moved
    }


FIELDS = {"observation": None, "step_type": np.int64, "reward": np.float32}


def test_cpu_path_is_as_tensor_a_view_of_writable_fields_one_copy_of_read_only_ones():
    data = _batch()
    out = tu.batch_to_device(data, torch.device("cpu"), FIELDS)
    assert set(out) == set(FIELDS)
    assert out["observation"].dtype == torch.uint8 and out["step_type"].dtype == torch.int64
    for name in FIELDS:
        assert out[name].device.type == "cpu"
        np.testing.assert_array_equal(out[name].numpy(), data[name])
    # No copy of what torch can use as it is; the read-only frames are copied once (they must be writable).
    assert out["reward"].data_ptr() == data["reward"].ctypes.data
    assert out["observation"].data_ptr() != data["observation"].ctypes.data
    # The same tensors as before devices existed.
    for name, dtype in FIELDS.items():
        assert torch.equal(out[name], tu.as_tensor(data[name], dtype))


def test_the_cpu_path_never_pins():
    out = tu.batch_to_device(_batch(), torch.device("cpu"), FIELDS)
    assert not any(t.is_pinned() for t in out.values())  # on a GPU machine too
    if not torch.cuda.is_available():  # and here it could not: pinning needs a GPU
        with pytest.raises(RuntimeError, match="pin"):
            tu.pinned_copy(np.zeros(3, np.float32))


@requires_cuda()
def test_pinned_copy_is_pinned_and_made_once():
    array = _read_only(np.arange(12, dtype=np.float32).reshape(3, 4))
    pinned = tu.pinned_copy(array)
    assert pinned.is_pinned() and pinned.data_ptr() != array.ctypes.data
    np.testing.assert_array_equal(pinned.numpy(), array)
    again = tu.pinned_copy(pinned.numpy())  # already pinned: not copied again
    assert again.data_ptr() == pinned.data_ptr()


@requires_cuda()
def test_pin_batch_then_batch_to_cuda_keeps_values_and_converts_on_the_device():
    data = _batch()
    sampled = tu.pin_batch(SampledBatch(np.arange(2, dtype=np.uint64), np.full(2, 0.5), data, 4))
    assert all(torch.from_numpy(a).is_pinned() for a in sampled.data.values())
    device = torch.device("cuda", 0)
    out = tu.batch_to_device(sampled.data, device, FIELDS)
    torch.cuda.synchronize()
    for name, dtype in FIELDS.items():
        assert out[name].device == device
        assert torch.equal(out[name].cpu(), tu.as_tensor(data[name], dtype))
    unpinned = tu.batch_to_device(data, device, FIELDS)  # from the replay table of herd train: pinned here
    assert all(torch.equal(unpinned[k].cpu(), out[k].cpu()) for k in FIELDS)


def test_scalars_to_host_equals_float_of_each_in_order():
    values = {"a": torch.tensor(1.25), "lr": 3e-4, "b": torch.tensor(0.1, dtype=torch.float32),
              "n": torch.tensor(7.0, dtype=torch.float64), "beta": 0.5}
    out = tu.scalars_to_host(values)
    assert list(out) == list(values)
    assert out == {k: float(v) for k, v in values.items()}
    assert all(type(v) is float for v in out.values())


def test_weights_of_are_copies_the_optimizer_cannot_change():
    net = torch.nn.Linear(3, 2)
    weights = tu.weights_of(net)
    before = {k: v.copy() for k, v in weights.items()}
    with torch.no_grad():
        net.weight.add_(1.0)  # what an optimizer step does in place
    assert all(np.array_equal(weights[k], before[k]) for k in weights)
    assert all(isinstance(v, np.ndarray) for v in weights.values())


def test_float32_precision_is_no_autocast_and_bfloat16_autocasts_the_forward_pass():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with tu.mixed_precision("float32", torch.device("cpu")):
        assert layer(x).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    with tu.mixed_precision("bfloat16", torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16
    assert layer.weight.dtype == torch.float32
    tu.check_precision("bfloat16", torch.device("cpu"))  # CPU autocast has bfloat16
