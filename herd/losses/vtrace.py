"""V-trace off-policy value targets (Espeholt et al. 2018, arXiv 1802.01561, §4).

Where this sits: the learner samples a time-major batch of unrolls that actors
produced with older weights (the *behaviour* policy μ), runs the current network
(the *target* policy π) over it, and turns both into V-trace targets ``vs`` for
the baseline and advantages for the policy gradient. :func:`impala_loss` in
:mod:`herd.losses.impala` is the only production caller.

All per-step tensors are time-major ``[T, B]`` and index *transitions*: entry
``t`` is the transition ``x_t -> x_{t+1}`` with reward ``r_t``, discount
``γ_t`` (already multiplied by the environment's discount, 0 at a terminal)
and ``V(x_t)``; ``bootstrap_value`` is ``V(x_T)``. (The learner shifts the
``dm_env``-style trajectory fields of :mod:`herd.types` into this alignment.)

Everything here runs under ``torch.no_grad()``: the targets are constants for
the loss, gradients never flow through them.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


class VTraceReturns(NamedTuple):
    """V-trace targets, each ``[T, B]`` and detached from the graph."""

    vs: Tensor  # v_s: V-trace value targets for V(x_s)
    pg_advantages: Tensor  # clipped ρ_s (r_s + γ_s v_{s+1} - V(x_s))


class VTraceFromLogitsReturns(NamedTuple):
    """V-trace targets plus the log-probabilities they were computed from."""

    vs: Tensor  # [T, B], detached
    pg_advantages: Tensor  # [T, B], detached
    log_rhos: Tensor  # [T, B]: log π(a|x) - log μ(a|x) (differentiable in the target logits)
    behaviour_action_log_probs: Tensor  # [T, B]: log μ(a_t|x_t)
    target_action_log_probs: Tensor  # [T, B]: log π(a_t|x_t) (differentiable)


def action_log_probs(logits: Tensor, actions: Tensor) -> Tensor:
    """``log softmax(logits)[a]`` for ``[T, B, A]`` logits and ``[T, B]`` int64 actions."""
    _check_logits(logits, actions, "logits")
    log_pi = F.log_softmax(logits, dim=-1)
    return log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def from_importance_weights(
    log_rhos: Tensor,
    discounts: Tensor,
    rewards: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    clip_rho_threshold: Optional[float] = 1.0,
    clip_pg_rho_threshold: Optional[float] = 1.0,
    lambda_: float = 1.0,
) -> VTraceReturns:
    """V-trace targets from log importance weights ``log π(a_t|x_t) - log μ(a_t|x_t)``.

    With ``ρ_t = min(ρ̄, e^{log_rho_t})`` and ``c_t = λ min(1, e^{log_rho_t})``::

        δ_t         = ρ_t (r_t + γ_t V(x_{t+1}) - V(x_t)),      V(x_T) = bootstrap_value
        v_t - V(x_t) = δ_t + γ_t c_t (v_{t+1} - V(x_{t+1})),      v_T   = bootstrap_value
        pg_adv_t    = min(ρ̄_pg, e^{log_rho_t}) (r_t + γ_t v_{t+1} - V(x_t))

    A threshold of ``None`` disables that clipping. ``log_rho_t = -inf`` (ρ = c = 0)
    is allowed and is how the loss masks out steps that are not real transitions:
    it gives ``δ_t = 0``, ``v_t = V(x_t)``, ``pg_adv_t = 0`` and cuts the trace.

    Args:
      log_rhos: ``[T, B]`` log importance weights.
      discounts: ``[T, B]`` γ_t (0 where the transition ends the episode).
      rewards: ``[T, B]`` r_t.
      values: ``[T, B]`` V(x_t).
      bootstrap_value: ``[B]`` V(x_T).
    """
    _check_vtrace_inputs(log_rhos, discounts, rewards, values, bootstrap_value)
    for name, threshold in (("clip_rho_threshold", clip_rho_threshold), ("clip_pg_rho_threshold", clip_pg_rho_threshold)):
        if threshold is not None and not threshold > 0:
            raise ValueError(f"{name} must be > 0 or None, got {threshold}")
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")

    with torch.no_grad():
        rho_tm = torch.exp(log_rhos)  # e^{-inf} = 0: masked steps get ρ = c = 0
        clipped_rho_tm = rho_tm if clip_rho_threshold is None else rho_tm.clamp(max=clip_rho_threshold)
        c_tm = lambda_ * rho_tm.clamp(max=1.0)

        # V(x_{t+1}) for every t: values shifted one step left, bootstrap appended.
        v_tp1 = torch.cat([values[1:], bootstrap_value.unsqueeze(0)], dim=0)
        deltas = clipped_rho_tm * (rewards + discounts * v_tp1 - values)

        # Backward recursion over time; acc holds v_{t+1} - V(x_{t+1}) (0 past the end).
        acc = torch.zeros_like(bootstrap_value)
        vs_minus_v = []
        for t in reversed(range(log_rhos.shape[0])):
            acc = deltas[t] + discounts[t] * c_tm[t] * acc
            vs_minus_v.append(acc)
        vs = torch.stack(vs_minus_v[::-1], dim=0) + values

        vs_tp1 = torch.cat([vs[1:], bootstrap_value.unsqueeze(0)], dim=0)
        pg_rho_tm = rho_tm if clip_pg_rho_threshold is None else rho_tm.clamp(max=clip_pg_rho_threshold)
        pg_advantages = pg_rho_tm * (rewards + discounts * vs_tp1 - values)
    return VTraceReturns(vs=vs, pg_advantages=pg_advantages)


def from_logits(
    behaviour_policy_logits: Tensor,
    target_policy_logits: Tensor,
    actions: Tensor,
    discounts: Tensor,
    rewards: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    clip_rho_threshold: Optional[float] = 1.0,
    clip_pg_rho_threshold: Optional[float] = 1.0,
    lambda_: float = 1.0,
) -> VTraceFromLogitsReturns:
    """V-trace targets from ``[T, B, A]`` behaviour and target logits and ``[T, B]`` actions.

    ``log_rhos = log π(a_t|x_t) - log μ(a_t|x_t)``; the returned ``log_rhos`` and
    ``target_action_log_probs`` keep their graph to the target logits, ``vs`` and
    ``pg_advantages`` are detached (see :func:`from_importance_weights`).
    """
    if behaviour_policy_logits.shape != target_policy_logits.shape:
        raise ValueError(
            "behaviour_policy_logits and target_policy_logits must have the same shape, got "
            f"{tuple(behaviour_policy_logits.shape)} and {tuple(target_policy_logits.shape)}"
        )
    target_lp = action_log_probs(target_policy_logits, actions)
    behaviour_lp = action_log_probs(behaviour_policy_logits, actions)
    log_rhos = target_lp - behaviour_lp
    returns = from_importance_weights(
        log_rhos,
        discounts,
        rewards,
        values,
        bootstrap_value,
        clip_rho_threshold=clip_rho_threshold,
        clip_pg_rho_threshold=clip_pg_rho_threshold,
        lambda_=lambda_,
    )
    return VTraceFromLogitsReturns(
        vs=returns.vs,
        pg_advantages=returns.pg_advantages,
        log_rhos=log_rhos,
        behaviour_action_log_probs=behaviour_lp,
        target_action_log_probs=target_lp,
    )


def _check_logits(logits: Tensor, actions: Tensor, name: str) -> None:
    if logits.dim() != 3:
        raise ValueError(f"{name} must be [T, B, A], got shape {tuple(logits.shape)}")
    if actions.dim() != 2 or actions.shape != logits.shape[:2]:
        raise ValueError(f"actions must be [T, B] = {tuple(logits.shape[:2])}, got shape {tuple(actions.shape)}")
    if actions.dtype != torch.int64:
        raise ValueError(f"actions must be int64, got {actions.dtype}")


def _check_vtrace_inputs(
    log_rhos: Tensor, discounts: Tensor, rewards: Tensor, values: Tensor, bootstrap_value: Tensor
) -> None:
    if log_rhos.dim() != 2:
        raise ValueError(f"log_rhos must be [T, B], got shape {tuple(log_rhos.shape)}")
    if log_rhos.shape[0] < 1:
        raise ValueError("log_rhos must have at least one time step (T >= 1)")
    for name, x in (("discounts", discounts), ("rewards", rewards), ("values", values)):
        if x.shape != log_rhos.shape:
            raise ValueError(f"{name} must be [T, B] = {tuple(log_rhos.shape)}, got shape {tuple(x.shape)}")
    if bootstrap_value.shape != log_rhos.shape[1:]:
        raise ValueError(
            f"bootstrap_value must be [B] = {tuple(log_rhos.shape[1:])}, got shape {tuple(bootstrap_value.shape)}"
        )
