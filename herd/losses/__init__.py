"""Losses as pure functions over time-major ``[T, B, ...]`` tensors (the learner's numerical core)."""

from herd.losses.impala import (
    ImpalaLossOutput,
    baseline_loss,
    entropy_loss,
    impala_loss,
    policy_gradient_loss,
)
from herd.losses.vtrace import (
    VTraceFromLogitsReturns,
    VTraceReturns,
    action_log_probs,
    from_importance_weights,
    from_logits,
)

__all__ = [
    "ImpalaLossOutput",
    "VTraceFromLogitsReturns",
    "VTraceReturns",
    "action_log_probs",
    "baseline_loss",
    "entropy_loss",
    "from_importance_weights",
    "from_logits",
    "impala_loss",
    "policy_gradient_loss",
]
