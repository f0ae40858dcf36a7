"""sample_categorical draws from softmax(logits): frequencies, zero-probability actions, determinism."""

from __future__ import annotations

import numpy as np

from herd.agents.impala.acting import sample_categorical


def test_frequencies_match_softmax_within_a_statistical_bound() -> None:
    logits = np.array([[0.0, 1.0, 2.0, -1.0], [3.0, 3.0, 3.0, 3.0]], np.float32)
    n = 100_000
    rng = np.random.default_rng(0)
    draws = np.stack([sample_categorical(logits, rng) for _ in range(n // 100) for _ in range(100)])
    for row in range(2):
        p = np.exp(logits[row] - logits[row].max())
        p /= p.sum()
        counts = np.bincount(draws[:, row], minlength=4)
        # Pearson chi-square with 3 degrees of freedom; 16.27 is the 0.999 quantile.
        chi2 = ((counts - n * p) ** 2 / (n * p)).sum()
        assert chi2 < 16.27, (row, counts, n * p)


def test_zero_probability_actions_are_never_drawn_and_dtype_is_int64() -> None:
    logits = np.array([[-np.inf, 0.0, -np.inf], [0.0, -1e4, -1e4]] * 500, np.float32)
    actions = sample_categorical(logits, np.random.default_rng(1))
    assert actions.dtype == np.int64 and actions.shape == (1000,)
    assert (actions[0::2] == 1).all() and (actions[1::2] == 0).all()


def test_same_seed_same_actions() -> None:
    logits = np.random.default_rng(2).normal(size=(64, 5)).astype(np.float32)
    a = sample_categorical(logits, np.random.default_rng(7))
    b = sample_categorical(logits, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
