"""Ape-X DQN's loss pieces against values worked out by hand from their definitions."""

import math

import numpy as np
import pytest
import torch

from herd.losses import dqn


def test_double_q_target_selects_with_online_and_values_with_target():
    r_t = torch.tensor([1.0, 0.5])
    discount_t = torch.tensor([0.9, 0.0])  # the second transition ended in a termination
    q_t_target = torch.tensor([[10.0, 20.0, 30.0], [5.0, 6.0, 7.0]])
    q_t_online = torch.tensor([[0.0, 9.0, 1.0], [3.0, 0.0, 0.0]])  # argmax: action 1, action 0
    target = dqn.double_q_target(r_t, discount_t, q_t_target, q_t_online)
    # 1 + 0.9 * Q_target(x, 1) = 1 + 0.9 * 20; 0.5 + 0 * anything
    assert target.tolist() == pytest.approx([19.0, 0.5])


def test_double_q_target_checks_shapes():
    with pytest.raises(ValueError, match="q_t_target"):
        dqn.double_q_target(torch.zeros(2), torch.zeros(2), torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="r_t"):
        dqn.double_q_target(torch.zeros(3), torch.zeros(3), torch.zeros(2, 3), torch.zeros(2, 3))


def test_huber_is_quadratic_inside_and_linear_outside():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0])
    # delta 1: 0.5 x^2 for |x| <= 1, |x| - 0.5 beyond
    assert dqn.huber(x, 1.0).tolist() == pytest.approx([2.5, 0.5, 0.125, 0.0, 0.125, 1.5])
    # delta 2: 0.5 x^2 for |x| <= 2, 2 (|x| - 1) beyond
    assert dqn.huber(x, 2.0).tolist() == pytest.approx([4.0, 0.5, 0.125, 0.0, 0.125, 2.0])


def test_importance_weights_match_the_definition():
    p = torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64)
    n, beta = 10, 0.5
    raw = [(n * 0.1) ** -0.5, (n * 0.2) ** -0.5, (n * 0.4) ** -0.5]  # 1, 1/sqrt 2, 1/2
    expected = [w / max(raw) for w in raw]
    assert dqn.importance_weights(p, n, beta).tolist() == pytest.approx(expected)
    assert dqn.importance_weights(p, n, 0.0).tolist() == [1.0, 1.0, 1.0]  # beta 0: no correction
    with pytest.raises(ValueError):
        dqn.importance_weights(torch.tensor([0.0, 1.0]), 2, 0.5)


def test_beta_anneals_linearly_to_one():
    assert dqn.annealed_beta(0.4, 0.0) == pytest.approx(0.4)
    assert dqn.annealed_beta(0.4, 0.5) == pytest.approx(0.7)
    assert dqn.annealed_beta(0.4, 1.0) == pytest.approx(1.0)
    assert dqn.annealed_beta(0.4, 3.0) == pytest.approx(1.0)


def test_priorities_are_abs_td_plus_epsilon():
    td = torch.tensor([-2.0, 0.0, 0.5])
    assert dqn.priorities_from_td(td, 1e-3).tolist() == pytest.approx([2.001, 0.001, 0.501])


def test_epsilon_ladder_of_ape_x():
    n = 8
    eps = [dqn.epsilon_ladder(i, n) for i in range(n)]
    assert eps[0] == pytest.approx(0.4)  # 0.4^1
    assert eps[-1] == pytest.approx(0.4**8)  # 0.4^(1 + 7)
    assert eps[3] == pytest.approx(0.4 ** (1 + 7 * 3 / 7))  # 0.4^4
    assert all(a > b for a, b in zip(eps, eps[1:]))
    assert dqn.epsilon_ladder(0, 1) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        dqn.epsilon_ladder(8, 8)


def test_updater_reports_priorities_and_moves_q_towards_the_target():
    from herd.agents.base import EnvInfo, SampledBatch
    from herd.agents.dqn.config import DQNConfig
    from herd.agents.dqn.learning import DQNUpdater

    cfg = DQNConfig.classic_control(batch_size=4, min_replay_size=4, learning_rate=1e-2)
    info = EnvInfo((3,), np.float32, 2, "t")
    updater = DQNUpdater(cfg, info, expected_updates=100, seed=0)
    rng = np.random.default_rng(0)
    batch = {
        "observation": rng.normal(size=(2, 4, 3)).astype(np.float32),
        "action": np.array([[0, 1, 0, 1]]),
        "reward": np.ones((1, 4), np.float32),
        "discount": np.zeros((1, 4), np.float32),  # terminal: the target is the reward, 1
    }
    sampled = SampledBatch(np.arange(4, dtype=np.uint64), np.full(4, 0.25), batch, table_size=4)
    first = updater.update(sampled)
    assert first.priorities is not None and first.priorities.shape == (4,)
    for _ in range(200):
        last = updater.update(sampled)
    assert last.metrics["mean_abs_td"] < 0.05 < first.metrics["mean_abs_td"]
    assert np.all(last.priorities >= cfg.priority_epsilon)
    assert {"total_loss", "q_loss", "grad_norm", "importance_beta"} <= set(last.metrics)


def test_dueling_head_decomposes_values():
    from herd.agents.dqn.networks import QNetwork

    torch.manual_seed(0)
    net = QNetwork((3,), 4, "mlp", (8, 8), dueling=True)
    x = torch.randn(5, 3)
    features = net.torso(x)
    a = net.advantage(features)
    v = net.value(features)
    assert torch.allclose(net(x), v + a - a.mean(dim=1, keepdim=True))
    # mean over actions of Q is V: the advantages are centred
    assert torch.allclose(net(x).mean(dim=1, keepdim=True), v, atol=1e-6)
    assert not math.isnan(float(net(x).sum().detach()))
