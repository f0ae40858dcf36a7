"""The IMPALA loss terms against hand-derived gradients and numpy values; masking; gradient paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from herd.losses import impala, vtrace

T, B, A = 6, 4, 3


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    mask = np.ones((T, B), dtype=bool)
    mask[2, 0] = mask[5, 1] = mask[0, 3] = False  # LAST entries: not real transitions
    discounts = np.full((T, B), 0.99)
    discounts[1, 2] = 0.0  # a terminal transition
    return dict(
        target_logits=torch.tensor(rng.normal(size=(T, B, A)), requires_grad=True),
        values=torch.tensor(rng.normal(size=(T, B)), requires_grad=True),
        bootstrap_value=torch.tensor(rng.normal(size=(B,))),
        behaviour_logits=torch.tensor(rng.normal(size=(T, B, A))),
        actions=torch.tensor(rng.integers(0, A, size=(T, B))),
        rewards=torch.tensor(rng.normal(size=(T, B))),
        discounts=torch.tensor(discounts),
        mask=torch.tensor(mask),
    )


def test_policy_gradient_grad_matches_hand_formula() -> None:
    batch = make_batch()
    logits, actions, mask = batch["target_logits"], batch["actions"], batch["mask"]
    advantages = torch.tensor(np.random.default_rng(1).normal(size=(T, B)))
    loss = impala.policy_gradient_loss(logits, actions, advantages, mask)
    (grad,) = torch.autograd.grad(loss, logits)

    # d/dz of −A log softmax(z)[a] = −A (onehot(a) − softmax(z)), zero where masked.
    z, a, adv, m = logits.detach().numpy(), actions.numpy(), advantages.numpy(), mask.numpy()
    want = -(adv * m)[..., None] * (np.eye(A)[a] - softmax(z))
    np.testing.assert_allclose(grad.numpy(), want, rtol=1e-10, atol=1e-12)
    log_pi_a = np.log(np.take_along_axis(softmax(z), a[..., None], axis=-1)[..., 0])
    np.testing.assert_allclose(loss.item(), -(adv * log_pi_a * m).sum(), rtol=1e-10)


def test_baseline_grad_is_minus_td_error() -> None:
    batch = make_batch()
    values, mask = batch["values"], batch["mask"]
    vs = torch.tensor(np.random.default_rng(2).normal(size=(T, B)))
    loss = impala.baseline_loss(vs - values, mask)
    (grad,) = torch.autograd.grad(loss, values)
    err = (vs - values.detach()).numpy() * mask.numpy()
    np.testing.assert_allclose(grad.numpy(), -err, rtol=1e-12)
    np.testing.assert_allclose(loss.item(), 0.5 * (err**2).sum(), rtol=1e-12)


def test_entropy_loss_matches_numpy() -> None:
    batch = make_batch()
    z, m = batch["target_logits"].detach().numpy(), batch["mask"].numpy()
    p = softmax(z)
    want = ((p * np.log(p)).sum(-1) * m).sum()  # negative entropy, summed over real steps
    got = impala.entropy_loss(batch["target_logits"], batch["mask"])
    np.testing.assert_allclose(got.item(), want, rtol=1e-10)
    assert got.item() < 0


def test_total_loss_and_its_gradients() -> None:
    batch = make_batch()
    out = impala.impala_loss(**batch, baseline_cost=0.5, entropy_cost=0.01)
    torch.testing.assert_close(out.total, out.pg_loss + 0.5 * out.baseline_loss + 0.01 * out.entropy_loss)
    g_logits, g_values = torch.autograd.grad(out.total, [batch["target_logits"], batch["values"]])

    # Independent targets: log-rhos with -inf at masked steps, then V-trace.
    m = batch["mask"]
    returns = vtrace.from_logits(
        batch["behaviour_logits"], batch["target_logits"].detach(), torch.where(m, batch["actions"], 0),
        batch["discounts"], batch["rewards"], batch["values"].detach(), batch["bootstrap_value"],
    )  # fmt: skip
    log_rhos = torch.where(m, returns.log_rhos, -torch.inf)
    ret = vtrace.from_importance_weights(
        log_rhos, torch.where(m, batch["discounts"], 0.0), torch.where(m, batch["rewards"], 0.0),
        batch["values"].detach(), batch["bootstrap_value"],
    )  # fmt: skip

    # Values: only the baseline term, −baseline_cost (vs − V); no path through vs.
    mn = m.numpy()
    want_v = -0.5 * (ret.vs - batch["values"].detach()).numpy() * mn
    np.testing.assert_allclose(g_values.numpy(), want_v, rtol=1e-10, atol=1e-12)

    # Logits: −A (onehot − π) + entropy_cost · π (log π − Σ π log π); no path through A.
    z, a = batch["target_logits"].detach().numpy(), batch["actions"].numpy()
    p = softmax(z)
    logp = np.log(p)
    pg = -(ret.pg_advantages.numpy() * mn)[..., None] * (np.eye(A)[a] - p)
    ent = 0.01 * mn[..., None] * p * (logp - (p * logp).sum(-1, keepdims=True))
    np.testing.assert_allclose(g_logits.numpy(), pg + ent, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out.extras["mean_vs"].item(), ret.vs.numpy()[mn].mean(), rtol=1e-10)


def test_behaviour_logits_and_bootstrap_get_no_gradient() -> None:
    batch = make_batch()
    batch["behaviour_logits"].requires_grad_(True)
    batch["bootstrap_value"].requires_grad_(True)
    out = impala.impala_loss(**batch)
    out.total.backward()
    assert batch["behaviour_logits"].grad is None and batch["bootstrap_value"].grad is None
    assert all(not v.requires_grad for v in out.extras.values())


def test_masked_steps_contribute_zero_loss_and_gradient() -> None:
    batch = make_batch()
    out = impala.impala_loss(**batch)
    out.total.backward()
    masked = ~batch["mask"]
    assert (batch["target_logits"].grad[masked] == 0).all()
    assert (batch["values"].grad[masked] == 0).all()

    # Whatever masked steps hold (garbage actions, NaN behaviour logits, huge rewards) changes nothing.
    garbage = make_batch()
    garbage["actions"] = torch.where(masked, -1, garbage["actions"])
    garbage["behaviour_logits"] = torch.where(masked[..., None], torch.nan, garbage["behaviour_logits"])
    garbage["rewards"] = torch.where(masked, 1e30, garbage["rewards"])
    garbage["discounts"] = torch.where(masked, torch.inf, garbage["discounts"])
    out2 = impala.impala_loss(**garbage)
    for name in ("total", "pg_loss", "baseline_loss", "entropy_loss"):
        torch.testing.assert_close(getattr(out2, name), getattr(out, name), rtol=1e-12, atol=1e-12)
    for key, value in out.extras.items():
        torch.testing.assert_close(out2.extras[key], value, msg=key)


def test_truncation_bootstraps_from_the_last_value() -> None:
    # One column, T = 3, γ = 1 everywhere (truncation, not termination), step 1 masked:
    # the trace stops at step 1, so vs_0 = r_0 + V(x_1) on-policy and vs_1 = V(x_1).
    logits = torch.zeros(3, 1, 2, requires_grad=True)
    values = torch.tensor([[1.0], [10.0], [100.0]], requires_grad=True)
    out = impala.impala_loss(
        logits, values, torch.tensor([1000.0]), torch.zeros(3, 1, 2), torch.zeros(3, 1, dtype=torch.int64),
        torch.tensor([[2.0], [3.0], [4.0]]), torch.ones(3, 1), torch.tensor([[True], [False], [True]]),
    )  # fmt: skip
    # vs = [2 + 10, 10, 4 + 1000]; baseline = 0.5 ((12 − 1)² + (1004 − 100)²)
    np.testing.assert_allclose(out.baseline_loss.item(), 0.5 * (11.0**2 + 904.0**2))
    np.testing.assert_allclose(out.extras["mean_vs"].item(), (12.0 + 1004.0) / 2)
    assert out.extras["num_real_steps"].item() == 2
    np.testing.assert_allclose(out.extras["mean_rho"].item(), 1.0)


def test_extras_with_clipping() -> None:
    batch = make_batch(3)
    out = impala.impala_loss(**batch, clip_rho_threshold=1.0)
    m = batch["mask"]
    log_rho = vtrace.action_log_probs(batch["target_logits"].detach(), batch["actions"]) - vtrace.action_log_probs(
        batch["behaviour_logits"], batch["actions"]
    )
    rho = log_rho.exp()[m]
    np.testing.assert_allclose(out.extras["mean_rho"].item(), rho.mean().item(), rtol=1e-10)
    np.testing.assert_allclose(out.extras["mean_clipped_fraction"].item(), (rho > 1.0).double().mean().item())
    assert 0.0 < out.extras["mean_clipped_fraction"].item() < 1.0


def test_all_masked_is_zero_and_finite() -> None:
    batch = make_batch()
    batch["mask"] = torch.zeros(T, B, dtype=torch.bool)
    out = impala.impala_loss(**batch)
    assert out.total.item() == 0.0
    assert all(torch.isfinite(v) for v in out.extras.values())


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(mask=torch.ones(T, B)), "mask must be bool"),
        (dict(mask=torch.ones(T, dtype=torch.bool)), "mask must be \\[T, B\\]"),
        (dict(rewards=torch.zeros(B, dtype=torch.float64)), "rewards must be \\[T, B\\]"),
        (dict(behaviour_logits=torch.zeros(T, B, A + 1)), "behaviour_logits"),
        (dict(values=torch.zeros(T, B, 1)), "values must be"),
        (dict(entropy_cost=-1.0), "entropy_cost"),
    ],
)
def test_bad_inputs_raise(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        impala.impala_loss(**{**make_batch(), **override})


# -- the clipped (PPO-style) policy loss against the behaviour policy ------------------------------


def _numpy_clipped(z: np.ndarray, zb: np.ndarray, a: np.ndarray, adv: np.ndarray, m: np.ndarray, eps: float):
    """Loss and d loss / d logits of −Σ m·min(r A, clip(r, 1−ε, 1+ε) A), derived by hand."""
    p, mu = softmax(z), softmax(zb)
    pa = np.take_along_axis(p, a[..., None], axis=-1)[..., 0]
    mua = np.take_along_axis(mu, a[..., None], axis=-1)[..., 0]
    r = pa / mua
    unclipped, clipped = r * adv, np.clip(r, 1 - eps, 1 + eps) * adv
    loss = -(np.minimum(unclipped, clipped) * m).sum()
    # The min picks the unclipped branch (gradient r·A·∇log π) unless the clipped one is
    # strictly smaller, and the clipped branch has zero gradient outside [1−ε, 1+ε].
    active = (unclipped <= clipped) | ((r > 1 - eps) & (r < 1 + eps))
    coeff = -(r * adv * m * active)
    grad = coeff[..., None] * (np.eye(z.shape[-1])[a] - p)
    return loss, grad, active


def test_clipped_policy_loss_and_gradient_match_hand_formula() -> None:
    batch = make_batch(3)
    logits, mask, actions = batch["target_logits"], batch["mask"], batch["actions"]
    # Behaviour logits near the target's, so steps fall on both sides of the clip range.
    rng = np.random.default_rng(4)
    behaviour = logits.detach() + torch.tensor(rng.normal(scale=0.4, size=(T, B, A)))
    advantages = torch.tensor(rng.normal(size=(T, B)))
    loss = impala.clipped_policy_gradient_loss(logits, behaviour, actions, advantages, mask, epsilon=0.2)
    (grad,) = torch.autograd.grad(loss, logits)

    want_loss, want_grad, active = _numpy_clipped(
        logits.detach().numpy(), behaviour.numpy(), actions.numpy(), advantages.numpy(), mask.numpy(), 0.2
    )
    np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-8, atol=1e-12)
    assert 0 < (~active & mask.numpy()).sum() < mask.numpy().sum()  # both branches exercised


def test_clipped_policy_loss_stops_pushing_past_the_clip() -> None:
    # One step, action 0 already 3x as likely as under the behaviour policy, positive advantage:
    # a V-trace gradient would push further (ρ clipped at 1, not 0); the clipped loss stops.
    logits = torch.tensor([[[2.0, 0.0]]], requires_grad=True)
    behaviour = torch.tensor([[[0.0, 0.0]]])
    actions, mask = torch.tensor([[0]]), torch.tensor([[True]])
    for adv, pushes in ((1.0, False), (-1.0, True)):  # a negative advantage still pulls it back
        loss = impala.clipped_policy_gradient_loss(logits, behaviour, actions, torch.tensor([[adv]]), mask, 0.2)
        (grad,) = torch.autograd.grad(loss, logits)
        assert bool(grad.abs().sum() > 0) is pushes


def test_clipped_on_policy_equals_vtrace_gradient() -> None:
    # On-policy (μ = π) the ratio is 1 inside the clip range: the gradient is the plain
    # policy gradient A ∇log π, the same as the V-trace loss gives with ρ = 1.
    batch = make_batch(5)
    batch["behaviour_logits"] = batch["target_logits"].detach().clone()
    v = impala.impala_loss(**batch, policy_loss="vtrace")
    c = impala.impala_loss(**batch, policy_loss="clipped", ratio_clip=0.1)
    gv = torch.autograd.grad(v.pg_loss, batch["target_logits"])[0]
    gc = torch.autograd.grad(c.pg_loss, batch["target_logits"])[0]
    torch.testing.assert_close(gv, gc, rtol=1e-9, atol=1e-12)


def test_clipped_advantages_are_vtrace_targets_without_rho() -> None:
    batch = make_batch(6)
    out = impala.impala_loss(**batch, policy_loss="clipped", ratio_clip=1e9)  # no clipping: Σ r A log-grad
    m = batch["mask"]
    ret = vtrace.from_importance_weights(
        torch.where(m, vtrace.action_log_probs(batch["target_logits"].detach(), torch.where(m, batch["actions"], 0))
                    - vtrace.action_log_probs(batch["behaviour_logits"], torch.where(m, batch["actions"], 0)),
                    -torch.inf),
        torch.where(m, batch["discounts"], 0.0), torch.where(m, batch["rewards"], 0.0),
        batch["values"].detach(), batch["bootstrap_value"],
    )  # fmt: skip
    vs_tp1 = np.concatenate([ret.vs.numpy()[1:], batch["bootstrap_value"].numpy()[None]])
    adv = (np.where(m, batch["rewards"], 0) + np.where(m, batch["discounts"], 0) * vs_tp1
           - batch["values"].detach().numpy())  # fmt: skip
    z, zb, a = batch["target_logits"].detach().numpy(), batch["behaviour_logits"].numpy(), batch["actions"].numpy()
    want, _, _ = _numpy_clipped(z, zb, np.where(m, a, 0), adv, m.numpy(), 1e9)
    np.testing.assert_allclose(out.pg_loss.item(), want, rtol=1e-10)


@pytest.mark.parametrize("kwargs, message", [({"policy_loss": "ppo"}, "policy_loss"), ({"policy_loss": "clipped", "ratio_clip": 0.0}, "epsilon")])
def test_clipped_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        impala.impala_loss(**make_batch(), **kwargs)
