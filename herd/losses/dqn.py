"""Ape-X DQN's loss pieces as pure functions (rlax style): n-step double-Q targets, the Huber
loss, and prioritized replay's importance weights and priorities.

Shapes are batch-major ``[B, ...]`` (transitions have no time axis left once the adder has
summed their n-step return). Names carry the time index: ``q_tm1`` are the values at the
transition's first observation ``x_{t-1}``, ``q_t`` at its bootstrap observation ``x_t``
(n steps later), ``r_t`` the n-step return and ``discount_t`` the bootstrap discount
(``γ^n`` times the environment's discounts; 0 past a termination).
"""

from __future__ import annotations

import torch
from torch import Tensor


def double_q_target(r_t: Tensor, discount_t: Tensor, q_t_target: Tensor, q_t_selector: Tensor) -> Tensor:
    """``r_t + discount_t * q_t_target[argmax_a q_t_selector]`` (van Hasselt et al. 2016), ``[B]``.

    The online network selects the bootstrap action, the target network values it.
    """
    if q_t_target.shape != q_t_selector.shape or q_t_target.dim() != 2:
        raise ValueError(f"q_t_target and q_t_selector must both be [B, A], got {q_t_target.shape}, {q_t_selector.shape}")
    if r_t.shape != discount_t.shape or r_t.shape != q_t_target.shape[:1]:
        raise ValueError(f"r_t and discount_t must be [B], got {r_t.shape}, {discount_t.shape}")
    best = q_t_selector.argmax(dim=1, keepdim=True)
    return r_t + discount_t * q_t_target.gather(1, best).squeeze(1)


def huber(x: Tensor, delta: float) -> Tensor:
    """``0.5 x^2`` for ``|x| <= delta``, else ``delta (|x| - 0.5 delta)`` (elementwise)."""
    abs_x = x.abs()
    quadratic = torch.clamp(abs_x, max=delta)
    return 0.5 * quadratic**2 + delta * (abs_x - quadratic)


def importance_weights(probabilities: Tensor, table_size: int, beta: float) -> Tensor:
    """``w_i = (N P(i))^-beta / max_j w_j`` over the batch (Schaul et al. 2016), ``[B]``.

    Normalising by the batch's largest weight keeps every weight <= 1, so the step size only shrinks.
    """
    if table_size < 1:
        raise ValueError(f"table_size must be >= 1, got {table_size}")
    if (probabilities <= 0).any():
        raise ValueError("sampling probabilities must be > 0")
    w = (table_size * probabilities) ** (-beta)
    return w / w.max()


def annealed_beta(beta0: float, progress: float) -> float:
    """beta linearly from ``beta0`` at progress 0 to 1 at progress >= 1."""
    return beta0 + (1.0 - beta0) * min(1.0, max(0.0, progress))


def priorities_from_td(td: Tensor, epsilon: float) -> Tensor:
    """Proportional priorities ``|td| + epsilon`` (the table raises them to alpha when sampling)."""
    return td.abs() + epsilon


def epsilon_ladder(index: int, total: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X's exploration ladder ``eps_i = base^(1 + alpha * i / (N - 1))`` for environment ``i`` of ``N``."""
    if not 0 <= index < total:
        raise ValueError(f"index must be in [0, {total}), got {index}")
    if total == 1:
        return base
    return base ** (1.0 + alpha * index / (total - 1))
