"""The IMPALA loss (Espeholt et al. 2018, arXiv 1802.01561, §4.2) as pure functions.

Where this sits: the learner runs the current network over a sampled batch and
calls :func:`impala_loss` once per update with time-major ``[T, B]`` tensors
aligned to *transitions* (entry ``t`` is ``x_t -> x_{t+1}``; see
:mod:`herd.losses.vtrace`), then back-propagates ``total``.

Reduction: every term is a **sum** over time and batch, not a mean, as in the
paper and TorchBeast. The paper's hyper-parameters (RMSProp ε = 0.01, gradient
clipping at global norm 40, learning rate 6e-4) were tuned for summed gradients,
so changing ``T`` or ``B`` scales the gradient.

Masking: ``mask[t, b]`` is False where entry ``t`` is not a real environment
transition (it is ``LAST``: the next entry is a reset). There ``log_rho`` is set
to ``-inf`` before V-trace (ρ = c = 0, so δ = 0, ``vs = V(x_t)`` and the trace is
cut, which is right even for a truncation whose env discount is 1), and the
policy-gradient, baseline and entropy terms are masked explicitly as well.
Rewards, discounts and actions at masked steps are ignored (they may hold
anything, e.g. a meaningless action at ``LAST``).

Gradients flow into ``target_logits`` and ``values`` only; ``vs`` and the
advantages are constants (computed under ``no_grad``), and ``behaviour_logits``
never receive a gradient.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from herd.losses import vtrace

Tensor = torch.Tensor


class ImpalaLossOutput(NamedTuple):
    """The loss to back-propagate and its parts (unweighted) for logging."""

    total: Tensor  # pg_loss + baseline_cost * baseline_loss + entropy_cost * entropy_loss
    pg_loss: Tensor
    baseline_loss: Tensor
    entropy_loss: Tensor
    extras: dict[str, Tensor]  # detached 0-dim diagnostics, means over real (unmasked) steps


def policy_gradient_loss(logits: Tensor, actions: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """``-Σ_{t,b} mask · A_t · log π(a_t|x_t)``: the policy-gradient term.

    ``logits`` ``[T, B, A]``, ``actions`` int64 ``[T, B]``, ``advantages`` ``[T, B]``
    (treated as constants), ``mask`` bool ``[T, B]``.
    """
    _check_mask(mask, logits.shape[:2])
    log_pi_a = vtrace.action_log_probs(logits, actions)
    per_step = advantages.detach() * log_pi_a
    return -torch.where(mask, per_step, torch.zeros_like(per_step)).sum()


def clipped_policy_gradient_loss(
    logits: Tensor,
    behaviour_logits: Tensor,
    actions: Tensor,
    advantages: Tensor,
    mask: Tensor,
    epsilon: float,
) -> Tensor:
    """``-Σ_{t,b} mask · min(r_t A_t, clip(r_t, 1-ε, 1+ε) A_t)`` with ``r_t = π(a_t|x_t) / μ(a_t|x_t)``.

    The clipped surrogate of PPO (Schulman et al. 2017) taken against the
    *behaviour* policy μ, as asynchronous PPO does: once the learner's policy has
    moved more than ``ε`` from the policy that acted on a step, in the direction
    its advantage favours, that step stops pushing. Under policy lag this keeps
    stale data from driving the policy past where it already went (the
    overshoot-and-collapse that a plain ρ-weighted gradient shows). ``advantages``
    are constants, ``behaviour_logits`` get no gradient.
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    _check_mask(mask, logits.shape[:2])
    log_pi_a = vtrace.action_log_probs(logits, actions)
    with torch.no_grad():
        log_mu_a = vtrace.action_log_probs(behaviour_logits, actions)
    ratio = torch.exp(torch.where(mask, log_pi_a - log_mu_a, torch.zeros_like(log_pi_a)))
    adv = advantages.detach()
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1.0 - epsilon, 1.0 + epsilon) * adv)
    return -torch.where(mask, surrogate, torch.zeros_like(surrogate)).sum()


def baseline_loss(vs_minus_v: Tensor, mask: Tensor) -> Tensor:
    """``0.5 Σ_{t,b} mask · (v_s - V(x_s))²``: the value regression term.

    Pass ``vs - values`` with ``vs`` detached (as V-trace returns it), so the
    gradient w.r.t. ``V(x_s)`` is ``-(v_s - V(x_s))``.
    """
    _check_mask(mask, vs_minus_v.shape)
    sq = vs_minus_v.square()
    return 0.5 * torch.where(mask, sq, torch.zeros_like(sq)).sum()


def entropy_loss(logits: Tensor, mask: Tensor) -> Tensor:
    """``Σ_{t,b} mask · Σ_a π log π``: the negative policy entropy (minimised as a bonus)."""
    if logits.dim() != 3:
        raise ValueError(f"logits must be [T, B, A], got shape {tuple(logits.shape)}")
    _check_mask(mask, logits.shape[:2])
    log_pi = F.log_softmax(logits, dim=-1)
    neg_entropy = (log_pi.exp() * log_pi).sum(dim=-1)
    return torch.where(mask, neg_entropy, torch.zeros_like(neg_entropy)).sum()


def impala_loss(
    target_logits: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    behaviour_logits: Tensor,
    actions: Tensor,
    rewards: Tensor,
    discounts: Tensor,
    mask: Tensor,
    baseline_cost: float = 0.5,
    entropy_cost: float = 0.01,
    clip_rho_threshold: Optional[float] = 1.0,
    clip_pg_rho_threshold: Optional[float] = 1.0,
    lambda_: float = 1.0,
    policy_loss: str = "vtrace",
    ratio_clip: float = 0.2,
) -> ImpalaLossOutput:
    """The full IMPALA loss on one batch (summed over ``T`` and ``B``).

    Args:
      target_logits: ``[T, B, A]`` current-network logits at ``x_t`` (differentiable).
      values: ``[T, B]`` current-network ``V(x_t)`` (differentiable).
      bootstrap_value: ``[B]`` ``V(x_T)`` (treated as a constant).
      behaviour_logits: ``[T, B, A]`` logits of the policy that acted.
      actions: ``[T, B]`` int64 actions taken at ``x_t``.
      rewards: ``[T, B]`` reward of the transition ``x_t -> x_{t+1}``.
      discounts: ``[T, B]`` ``γ · d_{t+1}`` (0 at a terminal).
      mask: ``[T, B]`` bool, False where ``t`` is not a real transition.
      policy_loss: ``"vtrace"`` — the paper's ``-Σ ρ̄_s A_s log π`` with V-trace
        advantages — or ``"clipped"`` — :func:`clipped_policy_gradient_loss` on the
        advantages ``r_s + γ_s v_{s+1} - V(x_s)`` (V-trace targets, no ρ factor:
        the surrogate's own ratio weights them), with clip ``ratio_clip``.
    """
    if policy_loss not in ("vtrace", "clipped"):
        raise ValueError(f"policy_loss must be 'vtrace' or 'clipped', got {policy_loss!r}")
    if target_logits.dim() != 3 or behaviour_logits.shape != target_logits.shape:
        raise ValueError(
            "target_logits and behaviour_logits must both be [T, B, A], got "
            f"{tuple(target_logits.shape)} and {tuple(behaviour_logits.shape)}"
        )
    _check_mask(mask, target_logits.shape[:2])
    for name, x in (("values", values), ("actions", actions), ("rewards", rewards), ("discounts", discounts)):
        if x.shape != mask.shape:  # checked before torch.where below could broadcast a wrong shape
            raise ValueError(f"{name} must be [T, B] = {tuple(mask.shape)}, got shape {tuple(x.shape)}")
    for name, cost in (("baseline_cost", baseline_cost), ("entropy_cost", entropy_cost)):
        if cost < 0:
            raise ValueError(f"{name} must be >= 0, got {cost}")

    # Neutralise whatever masked steps hold, so garbage there cannot leak (e.g. an
    # out-of-range action at LAST, or NaN behaviour logits of an unused step).
    actions = torch.where(mask, actions, torch.zeros_like(actions))
    rewards = torch.where(mask, rewards, torch.zeros_like(rewards))
    discounts = torch.where(mask, discounts, torch.zeros_like(discounts))

    with torch.no_grad():
        log_rho_tm = vtrace.action_log_probs(target_logits, actions) - vtrace.action_log_probs(
            behaviour_logits, actions
        )
        log_rho_tm = torch.where(mask, log_rho_tm, torch.full_like(log_rho_tm, -float("inf")))
    returns = vtrace.from_importance_weights(
        log_rho_tm,
        discounts,
        rewards,
        values.detach(),
        bootstrap_value.detach(),
        clip_rho_threshold=clip_rho_threshold,
        clip_pg_rho_threshold=clip_pg_rho_threshold,
        lambda_=lambda_,
    )

    if policy_loss == "vtrace":
        pg = policy_gradient_loss(target_logits, actions, returns.pg_advantages, mask)
    else:
        with torch.no_grad():
            vs_tp1 = torch.cat([returns.vs[1:], bootstrap_value.detach()[None]], dim=0)
            advantages = rewards + discounts * vs_tp1 - values.detach()
        pg = clipped_policy_gradient_loss(target_logits, behaviour_logits, actions, advantages, mask, ratio_clip)
    bl = baseline_loss(returns.vs - values, mask)
    ent = entropy_loss(target_logits, mask)
    total = pg + baseline_cost * bl + entropy_cost * ent
    extras = _diagnostics(log_rho_tm, values, returns, target_logits, mask, clip_rho_threshold)
    return ImpalaLossOutput(total=total, pg_loss=pg, baseline_loss=bl, entropy_loss=ent, extras=extras)


def _diagnostics(
    log_rho_tm: Tensor,
    values: Tensor,
    returns: vtrace.VTraceReturns,
    target_logits: Tensor,
    mask: Tensor,
    clip_rho_threshold: Optional[float],
) -> dict[str, Tensor]:
    """Means over real steps (0 when there are none) of what tells whether learning is healthy."""
    with torch.no_grad():
        m = mask.to(values.dtype)
        n = m.sum().clamp(min=1.0)

        def mean(x: Tensor) -> Tensor:
            return torch.where(mask, x, torch.zeros_like(x)).sum() / n

        rho = log_rho_tm.exp()  # 0 at masked steps
        clipped = rho > clip_rho_threshold if clip_rho_threshold is not None else torch.zeros_like(mask)
        log_pi = F.log_softmax(target_logits.detach(), dim=-1)
        entropy = -(log_pi.exp() * log_pi).sum(dim=-1)
        return {
            "mean_rho": mean(rho),
            "mean_clipped_fraction": mean(clipped.to(values.dtype)),
            "mean_log_rho": mean(log_rho_tm),
            "mean_value": mean(values.detach()),
            "mean_vs": mean(returns.vs),
            "mean_pg_advantage": mean(returns.pg_advantages),
            "mean_entropy": mean(entropy),
            "num_real_steps": m.sum(),
        }


def _check_mask(mask: Tensor, expected: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    if mask.shape != expected:
        raise ValueError(f"mask must be [T, B] = {tuple(expected)}, got shape {tuple(mask.shape)}")
