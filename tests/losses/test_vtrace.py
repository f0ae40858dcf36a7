"""V-trace against a slow reference written from the paper's sum formula, fixed vectors, properties."""

from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np
import pytest
import torch

from herd.losses import vtrace

THRESHOLDS = (None, 1.0, 0.5, 2.0)


def reference_vtrace(
    log_rhos: np.ndarray,
    discounts: np.ndarray,
    rewards: np.ndarray,
    values: np.ndarray,
    bootstrap_value: np.ndarray,
    clip_rho_threshold: Optional[float],
    clip_pg_rho_threshold: Optional[float],
    lambda_: float,
) -> tuple[np.ndarray, np.ndarray]:
    """arXiv 1802.01561 eq. (1), literally, with float64 loops:

    v_s = V(x_s) + Σ_{t=s}^{T-1} γ_s…γ_{t-1} (Π_{i=s}^{t-1} c_i) δ_t,
    δ_t = ρ_t (r_t + γ_t V(x_{t+1}) - V(x_t)),  ρ_t = min(ρ̄, π/μ),  c_i = λ min(1, π/μ),
    pg_adv_s = min(ρ̄_pg, π/μ) (r_s + γ_s v_{s+1} - V(x_s)),  with V(x_T) = v_T = bootstrap.
    """
    T, B = log_rhos.shape
    vs = np.zeros((T, B))
    pg = np.zeros((T, B))
    for b in range(B):

        def value(t: int) -> float:
            return float(bootstrap_value[b]) if t == T else float(values[t, b])

        def ratio(t: int) -> float:
            return math.exp(log_rhos[t, b]) if log_rhos[t, b] != -math.inf else 0.0

        def rho(t: int) -> float:
            return ratio(t) if clip_rho_threshold is None else min(clip_rho_threshold, ratio(t))

        def c(i: int) -> float:
            return lambda_ * min(1.0, ratio(i))

        def delta(t: int) -> float:
            return rho(t) * (rewards[t, b] + discounts[t, b] * value(t + 1) - value(t))

        for s in range(T):
            total = value(s)
            for t in range(s, T):
                weight = 1.0
                for i in range(s, t):
                    weight *= discounts[i, b] * c(i)
                total += weight * delta(t)
            vs[s, b] = total
        for s in range(T):
            v_next = float(bootstrap_value[b]) if s == T - 1 else vs[s + 1, b]
            pg_rho = ratio(s) if clip_pg_rho_threshold is None else min(clip_pg_rho_threshold, ratio(s))
            pg[s, b] = pg_rho * (rewards[s, b] + discounts[s, b] * v_next - values[s, b])
    return vs, pg


def random_inputs(rng: np.random.Generator, T: int, B: int) -> dict[str, np.ndarray]:
    discounts = np.full((T, B), 0.9)
    discounts[rng.random((T, B)) < 0.2] = 0.0  # episode ends inside the unroll
    return dict(
        log_rhos=rng.normal(0.0, 1.0, (T, B)),
        discounts=discounts,
        rewards=rng.normal(0.0, 1.0, (T, B)),
        values=rng.normal(0.0, 1.0, (T, B)),
        bootstrap_value=rng.normal(0.0, 1.0, (B,)),
    )


def run(inputs: dict[str, np.ndarray], dtype: torch.dtype = torch.float64, **kwargs) -> vtrace.VTraceReturns:
    return vtrace.from_importance_weights(**{k: torch.tensor(v, dtype=dtype) for k, v in inputs.items()}, **kwargs)


@pytest.mark.parametrize("lambda_", [1.0, 0.9, 0.5])
@pytest.mark.parametrize("B", [1, 3, 8])
@pytest.mark.parametrize("T", [1, 2, 5, 17])
def test_matches_paper_sum_formula(T: int, B: int, lambda_: float) -> None:
    rng = np.random.default_rng(1000 * T + 10 * B + int(10 * lambda_))
    inputs = random_inputs(rng, T, B)
    for rho_bar, pg_rho_bar in itertools.product(THRESHOLDS, THRESHOLDS):
        kw = dict(clip_rho_threshold=rho_bar, clip_pg_rho_threshold=pg_rho_bar, lambda_=lambda_)
        want_vs, want_pg = reference_vtrace(**inputs, **kw)
        got = run(inputs, **kw)
        np.testing.assert_allclose(got.vs.numpy(), want_vs, rtol=1e-10, atol=1e-10, err_msg=str(kw))
        np.testing.assert_allclose(got.pg_advantages.numpy(), want_pg, rtol=1e-10, atol=1e-10, err_msg=str(kw))
        got32 = run(inputs, dtype=torch.float32, **kw)
        np.testing.assert_allclose(got32.vs.numpy(), want_vs, rtol=1e-4, atol=1e-4, err_msg=str(kw))


def test_fixed_vector_by_hand() -> None:
    # T = 2, B = 1, γ = 0.5, V = [3, 4], bootstrap V(x_2) = 5, r = [2, 2],
    # π/μ = [2, 0.5].  With ρ̄ = ρ̄_pg = 1 and λ = 1:  ρ = [1, 0.5], c = [1, 0.5]
    #   δ_1 = 0.5 (2 + 0.5·5 − 4) = 0.25          v_1 = 4 + 0.25 = 4.25
    #   δ_0 = 1 (2 + 0.5·4 − 3)   = 1             v_0 = 3 + 1 + 0.5·1·0.25 = 4.125
    #   pg_0 = 1 (2 + 0.5·4.25 − 3) = 1.125      pg_1 = 0.5 (2 + 0.5·5 − 4) = 0.25
    inputs = dict(
        log_rhos=np.log([[2.0], [0.5]]),
        discounts=np.full((2, 1), 0.5),
        rewards=np.full((2, 1), 2.0),
        values=np.array([[3.0], [4.0]]),
        bootstrap_value=np.array([5.0]),
    )
    got = run(inputs)
    np.testing.assert_allclose(got.vs.numpy(), [[4.125], [4.25]], atol=1e-12)
    np.testing.assert_allclose(got.pg_advantages.numpy(), [[1.125], [0.25]], atol=1e-12)

    # No clipping, λ = 0.5:  ρ = [2, 0.5], c = 0.5·[1, 0.5] = [0.5, 0.25]
    #   δ_1 = 0.25, v_1 = 4.25;  δ_0 = 2·1 = 2, v_0 = 3 + 2 + 0.5·0.5·0.25 = 5.0625
    #   pg_0 = 2 (2 + 0.5·4.25 − 3) = 2.25,  pg_1 = 0.25
    got = run(inputs, clip_rho_threshold=None, clip_pg_rho_threshold=None, lambda_=0.5)
    np.testing.assert_allclose(got.vs.numpy(), [[5.0625], [4.25]], atol=1e-12)
    np.testing.assert_allclose(got.pg_advantages.numpy(), [[2.25], [0.25]], atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_trace_cut_by_zero_discount_equals_two_traces(seed: int) -> None:
    rng = np.random.default_rng(seed)
    T, B, k = 9, 4, int(rng.integers(0, 8))
    inputs = random_inputs(rng, T, B)
    inputs["discounts"][k] = 0.0  # the episode ends on transition k in every column
    kw = dict(clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0, lambda_=0.9)
    whole = run(inputs, **kw)

    first = {key: v[: k + 1] for key, v in inputs.items() if key != "bootstrap_value"}
    first["bootstrap_value"] = rng.normal(size=B)  # irrelevant: multiplied by γ_k = 0
    second = {key: v[k + 1 :] for key, v in inputs.items() if key != "bootstrap_value"}
    second["bootstrap_value"] = inputs["bootstrap_value"]
    head = run(first, **kw)
    parts_vs = [head.vs]
    parts_pg = [head.pg_advantages]
    if k + 1 < T:
        tail = run(second, **kw)
        parts_vs.append(tail.vs)
        parts_pg.append(tail.pg_advantages)
    torch.testing.assert_close(whole.vs, torch.cat(parts_vs), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(whole.pg_advantages, torch.cat(parts_pg), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", [1, 4, 11])
def test_on_policy_equals_n_step_returns(T: int) -> None:
    rng = np.random.default_rng(T)
    inputs = random_inputs(rng, T, 5)
    inputs["log_rhos"] = np.zeros((T, 5))
    got = run(inputs, lambda_=1.0)
    # G_s = Σ_{t=s}^{T-1} (Π_{i=s}^{t-1} γ_i) r_t + (Π_{i=s}^{T-1} γ_i) V(x_T)
    want = np.zeros((T, 5))
    for s, b in itertools.product(range(T), range(5)):
        g, w = 0.0, 1.0
        for t in range(s, T):
            g += w * inputs["rewards"][t, b]
            w *= inputs["discounts"][t, b]
        want[s, b] = g + w * inputs["bootstrap_value"][b]
    np.testing.assert_allclose(got.vs.numpy(), want, rtol=1e-10, atol=1e-10)


def test_minus_inf_log_rho_is_finite_and_cuts_the_trace() -> None:
    rng = np.random.default_rng(7)
    T, B = 6, 3
    inputs = random_inputs(rng, T, B)
    inputs["discounts"][:] = 0.9  # a truncation: no zero discount to cut the trace
    inputs["log_rhos"][2, :] = -np.inf
    inputs["log_rhos"][T - 1, 1] = -np.inf
    for rho_bar in THRESHOLDS:
        kw = dict(clip_rho_threshold=rho_bar, clip_pg_rho_threshold=rho_bar, lambda_=1.0)
        got = run(inputs, **kw)
        assert torch.isfinite(got.vs).all() and torch.isfinite(got.pg_advantages).all()
        np.testing.assert_allclose(got.vs[2].numpy(), inputs["values"][2])
        assert got.vs[T - 1, 1].item() == inputs["values"][T - 1, 1]
        assert (got.pg_advantages[2] == 0).all() and got.pg_advantages[T - 1, 1] == 0
        want_vs, want_pg = reference_vtrace(**inputs, **kw)
        np.testing.assert_allclose(got.vs.numpy(), want_vs, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got.pg_advantages.numpy(), want_pg, rtol=1e-10, atol=1e-10)


def test_no_gradient_flows_through_targets() -> None:
    inputs = {k: torch.tensor(v, requires_grad=True) for k, v in random_inputs(np.random.default_rng(0), 3, 2).items()}
    got = vtrace.from_importance_weights(**inputs)
    assert not got.vs.requires_grad and not got.pg_advantages.requires_grad


def test_from_logits_log_rhos_match_numpy() -> None:
    rng = np.random.default_rng(3)
    T, B, A = 5, 4, 3
    mu_logits, pi_logits = rng.normal(size=(T, B, A)), rng.normal(size=(T, B, A))
    actions = rng.integers(0, A, size=(T, B))
    inputs = random_inputs(rng, T, B)
    del inputs["log_rhos"]

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    pick = lambda lp: np.take_along_axis(lp, actions[..., None], axis=-1)[..., 0]  # noqa: E731
    want_mu, want_pi = pick(log_softmax(mu_logits)), pick(log_softmax(pi_logits))

    pi_t = torch.tensor(pi_logits, requires_grad=True)
    got = vtrace.from_logits(
        torch.tensor(mu_logits), pi_t, torch.tensor(actions), **{k: torch.tensor(v) for k, v in inputs.items()}
    )
    np.testing.assert_allclose(got.behaviour_action_log_probs.numpy(), want_mu, rtol=1e-12)
    np.testing.assert_allclose(got.target_action_log_probs.detach().numpy(), want_pi, rtol=1e-12)
    np.testing.assert_allclose(got.log_rhos.detach().numpy(), want_pi - want_mu, rtol=1e-10, atol=1e-12)
    want_vs, want_pg = reference_vtrace(want_pi - want_mu, **inputs, clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0, lambda_=1.0)
    np.testing.assert_allclose(got.vs.numpy(), want_vs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got.pg_advantages.numpy(), want_pg, rtol=1e-10, atol=1e-10)
    assert got.target_action_log_probs.requires_grad and not got.vs.requires_grad


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(log_rhos=torch.zeros(3)), "log_rhos must be \\[T, B\\]"),
        (dict(log_rhos=torch.zeros(0, 2)), "at least one time step"),
        (dict(rewards=torch.zeros(3, 3)), "rewards must be \\[T, B\\]"),
        (dict(discounts=torch.zeros(2, 2)), "discounts must be"),
        (dict(values=torch.zeros(3, 2, 1)), "values must be"),
        (dict(bootstrap_value=torch.zeros(3)), "bootstrap_value must be \\[B\\]"),
        (dict(clip_rho_threshold=0.0), "clip_rho_threshold must be > 0"),
        (dict(clip_pg_rho_threshold=-1.0), "clip_pg_rho_threshold"),
        (dict(lambda_=1.5), "lambda_"),
    ],
)
def test_bad_inputs_raise(override: dict, message: str) -> None:
    kwargs = dict(
        log_rhos=torch.zeros(3, 2),
        discounts=torch.zeros(3, 2),
        rewards=torch.zeros(3, 2),
        values=torch.zeros(3, 2),
        bootstrap_value=torch.zeros(2),
    )
    with pytest.raises(ValueError, match=message):
        vtrace.from_importance_weights(**{**kwargs, **override})


def test_from_logits_bad_actions_raise() -> None:
    logits = torch.zeros(3, 2, 4)
    rest = [torch.zeros(3, 2)] * 3 + [torch.zeros(2)]
    with pytest.raises(ValueError, match="actions must be int64"):
        vtrace.from_logits(logits, logits, torch.zeros(3, 2), *rest)
    with pytest.raises(ValueError, match="actions must be \\[T, B\\]"):
        vtrace.from_logits(logits, logits, torch.zeros(3, dtype=torch.int64), *rest)
    with pytest.raises(ValueError, match="same shape"):
        vtrace.from_logits(logits, torch.zeros(3, 2, 5), torch.zeros(3, 2, dtype=torch.int64), *rest)
