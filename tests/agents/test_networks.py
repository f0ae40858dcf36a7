"""IMPALA networks: shapes, [T, B] handling, LSTM resets at episode starts, gradients, sizes."""

from __future__ import annotations

import pytest
import torch

from herd.agents.impala.networks import ImpalaNetwork, make_network

IMAGE = (3, 48, 48)  # small frames keep the conv tests fast


def observations(shape: tuple[int, ...], T: int, B: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if len(shape) == 3:
        return torch.randint(0, 256, (T, B, *shape), generator=g, dtype=torch.uint8)
    return torch.randn(T, B, *shape, generator=g)


def build(torso: str, use_lstm: bool, num_actions: int = 5) -> tuple[ImpalaNetwork, tuple[int, ...]]:
    shape = (7,) if torso == "mlp" else IMAGE
    torch.manual_seed(0)
    return make_network(shape, num_actions, torso, hidden_sizes=(32, 16), use_lstm=use_lstm, lstm_size=24), shape


@pytest.mark.parametrize("use_lstm", [False, True])
@pytest.mark.parametrize("torso", ["mlp", "shallow", "deep"])
def test_output_shapes(torso: str, use_lstm: bool) -> None:
    net, shape = build(torso, use_lstm)
    T, B = 3, 2
    state = net.initial_state(B)
    assert state == () if not use_lstm else [tuple(s.shape) for s in state] == [(B, 24)] * 2
    out, new_state = net(observations(shape, T, B), torch.zeros(T, B, dtype=torch.bool), state)
    assert out.policy_logits.shape == (T, B, 5) and out.policy_logits.dtype == torch.float32
    assert out.baseline.shape == (T, B)
    assert [s.shape for s in new_state] == [s.shape for s in state]
    assert torch.isfinite(out.policy_logits).all() and torch.isfinite(out.baseline).all()


@pytest.mark.parametrize("torso", ["mlp", "shallow", "deep"])
def test_time_and_batch_are_not_mixed(torso: str) -> None:
    net, shape = build(torso, use_lstm=False)
    T, B = 3, 4
    obs = observations(shape, T, B)
    first = torch.zeros(T, B, dtype=torch.bool)
    with torch.no_grad():
        out, _ = net(obs, first, ())
        for t in range(T):
            for b in range(B):
                one, _ = net(obs[t : t + 1, b : b + 1], first[t : t + 1, b : b + 1], ())
                torch.testing.assert_close(one.policy_logits[0, 0], out.policy_logits[t, b])
                torch.testing.assert_close(one.baseline[0, 0], out.baseline[t, b])


def random_state(net: ImpalaNetwork, B: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn_like(s) for s in net.initial_state(B))


def test_lstm_reset_equals_fresh_start() -> None:
    net, shape = build("mlp", use_lstm=True)
    T, B, k = 8, 3, 4
    obs = observations(shape, T, B)
    first = torch.zeros(T, B, dtype=torch.bool)
    first[k, 1] = True  # column 1 starts a new episode at step k
    first[6, 1] = True  # ... and again at step 6
    first[0, 2] = True  # column 2 starts one at step 0: the incoming state is ignored
    state = random_state(net, B)
    with torch.no_grad():
        out, _ = net(obs, first, state)
        fresh, _ = net(obs[k:, 1:2], first[k:, 1:2], net.initial_state(1))
        torch.testing.assert_close(out.policy_logits[k:, 1:2], fresh.policy_logits)
        torch.testing.assert_close(out.baseline[k:, 1:2], fresh.baseline)
        fresh2, _ = net(obs[:, 2:3], first[:, 2:3], net.initial_state(1))
        torch.testing.assert_close(out.baseline[:, 2:3], fresh2.baseline)
        # Without the reset the carried state matters (so the checks above are not vacuous).
        carried, _ = net(obs, torch.zeros(T, B, dtype=torch.bool), state)
        assert not torch.allclose(carried.baseline[k:, 1], out.baseline[k:, 1])
        torch.testing.assert_close(carried.baseline[:k, 1], out.baseline[:k, 1])
        torch.testing.assert_close(carried.baseline[:, 0], out.baseline[:, 0])


def test_lstm_step_by_step_equals_whole_unroll() -> None:
    # The actor calls forward with T = 1 and carries the state; the learner unrolls T at once.
    net, shape = build("mlp", use_lstm=True)
    T, B = 7, 4
    obs = observations(shape, T, B, seed=1)
    first = torch.rand(T, B, generator=torch.Generator().manual_seed(2)) < 0.25
    state = random_state(net, B)
    with torch.no_grad():
        whole, whole_state = net(obs, first, state)
        s = state
        for t in range(T):
            step, s = net(obs[t : t + 1], first[t : t + 1], s)
            torch.testing.assert_close(step.policy_logits[0], whole.policy_logits[t])
            torch.testing.assert_close(step.baseline[0], whole.baseline[t])
    for a, b in zip(s, whole_state):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("use_lstm", [False, True])
@pytest.mark.parametrize("torso", ["mlp", "shallow", "deep"])
def test_gradients_reach_every_parameter(torso: str, use_lstm: bool) -> None:
    net, shape = build(torso, use_lstm)
    T, B = 3, 2
    first = torch.zeros(T, B, dtype=torch.bool)
    first[1, 0] = True
    out, _ = net(observations(shape, T, B), first, random_state(net, B))
    (out.policy_logits.square().sum() + out.baseline.sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def linear(i: int, o: int) -> int:
    return i * o + o


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts() -> None:
    heads = lambda core, a: linear(core, a) + linear(core, 1)  # noqa: E731
    mlp = make_network((4,), 2, "mlp", hidden_sizes=(64, 64))
    assert count(mlp) == linear(4, 64) + linear(64, 64) + heads(64, 2) == 4675

    mlp_lstm = make_network((4,), 2, "mlp", hidden_sizes=(64, 64), use_lstm=True, lstm_size=256)
    lstm = 4 * (256 * 64 + 256 * 256 + 2 * 256)  # 4 gates: input and hidden weights, two biases
    assert count(mlp_lstm) == linear(4, 64) + linear(64, 64) + lstm + heads(256, 2)

    atari = (4, 84, 84)
    shallow = make_network(atari, 6, "shallow")
    # 84 -> (84 - 8) / 4 + 1 = 20 -> (20 - 4) / 2 + 1 = 9
    assert count(shallow) == conv(4, 16, 8) + conv(16, 32, 4) + linear(32 * 9 * 9, 256) + heads(256, 6)

    deep = make_network(atari, 6, "deep")
    sections = 0
    for cin, cout in ((4, 16), (16, 32), (32, 32)):
        sections += conv(cin, cout, 3) + 4 * conv(cout, cout, 3)  # entry conv + 2 blocks of 2 convs
    # 84 -> 42 -> 21 -> 11 after three 3x3/2 max-pools with padding 1
    assert count(deep) == sections + linear(32 * 11 * 11, 256) + heads(256, 6)
    assert 1_000_000 < count(deep) < 1_200_000


def test_initial_policy_is_near_uniform() -> None:
    net, shape = build("mlp", use_lstm=False)
    with torch.no_grad():
        out, _ = net(observations(shape, 4, 8), torch.zeros(4, 8, dtype=torch.bool), ())
    probs = out.policy_logits.softmax(-1)
    assert (probs - 1 / 5).abs().max() < 0.02


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(observation_shape=(), num_actions=2, torso="mlp"), "observation_shape"),
        (dict(observation_shape=(4, 0), num_actions=2, torso="mlp"), "observation_shape"),
        (dict(observation_shape=(4,), num_actions=0, torso="mlp"), "num_actions"),
        (dict(observation_shape=(4,), num_actions=2, torso="resnet"), "torso"),
        (dict(observation_shape=(4,), num_actions=2, torso="mlp", hidden_sizes=(8, 0)), "hidden_sizes"),
        (dict(observation_shape=(4,), num_actions=2, torso="mlp", use_lstm=True, lstm_size=0), "lstm_size"),
        (dict(observation_shape=(84, 84), num_actions=2, torso="deep"), "observation_shape"),
        (dict(observation_shape=(1, 6, 6), num_actions=2, torso="shallow"), "observation_shape"),
    ],
)
def test_make_network_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_network(**kwargs)


def test_forward_rejects_bad_inputs() -> None:
    net, shape = build("shallow", use_lstm=True)
    obs = observations(shape, 2, 3)
    ok_first = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="first must be \\[T, B\\]"):
        net(obs, torch.zeros(3, 2, dtype=torch.bool), net.initial_state(3))
    with pytest.raises(ValueError, match="first must be bool"):
        net(obs, torch.zeros(2, 3), net.initial_state(3))
    with pytest.raises(ValueError, match="core_state"):
        net(obs, ok_first, net.initial_state(2))
    with pytest.raises(TypeError, match="uint8"):
        net(obs.float(), ok_first, net.initial_state(3))
