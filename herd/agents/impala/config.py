"""IMPALA hyper-parameters: one frozen dataclass, validated on construction.

The defaults are the paper's (Espeholt et al. 2018, arXiv 1802.01561; DESIGN.md §7).
``classic_control()`` holds our own defaults for small vector-observation tasks
such as CartPole, tuned on the 2-core development machine (docs/agents/impala.md#presets).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from herd.config import option


@dataclasses.dataclass(frozen=True)
class ImpalaConfig:
    """Everything the IMPALA actor policy and learner update need to know."""

    unroll_length: int = option(20, "environment steps per unroll (T); unrolls hold T+1 steps, overlapping by one")
    batch_size: int = option(32, "unrolls per learner batch (B)")
    discount: float = option(0.99, "discount factor gamma")
    learning_rate: float = option(6e-4, "initial learning rate")
    lr_schedule: Literal["linear", "constant"] = option("linear", "linear decay to 0 over the run's env steps, or constant")
    optimizer: Literal["rmsprop", "adam"] = option("rmsprop", "optimizer (the paper uses RMSProp)")
    rmsprop_alpha: float = option(0.99, "RMSProp decay")
    rmsprop_momentum: float = option(0.0, "RMSProp momentum")
    epsilon: float = option(0.01, "optimizer epsilon (RMSProp 0.01 in the paper; the loss is summed, not averaged)")
    max_grad_norm: float = option(40.0, "global-norm gradient clipping threshold")
    entropy_cost: float = option(0.01, "weight of the entropy bonus")
    baseline_cost: float = option(0.5, "weight of the value (baseline) loss")
    clip_rho_threshold: float = option(1.0, "V-trace rho-bar (truncation of the importance weights in the TD terms)")
    clip_pg_rho_threshold: float = option(1.0, "rho-bar of the policy-gradient advantages")
    lambda_: float = option(1.0, "V-trace lambda (c_i = lambda * min(1, rho_i))")
    policy_loss: Literal["vtrace", "clipped"] = option(
        "vtrace", "policy-gradient term: vtrace (the paper's) or clipped (PPO surrogate against the behaviour policy)"
    )
    ratio_clip: float = option(0.2, "epsilon of the clipped policy loss: ratios pi/mu outside [1-eps, 1+eps] stop pushing")
    reward_clip: Optional[float] = option(None, "clip rewards to [-x, x] (1.0 on Atari); none to disable")
    torso: Literal["mlp", "shallow", "deep", "minatar", "auto"] = option(
        "deep",
        "network torso: mlp (vectors), shallow or deep (ResNet) for screens, minatar for 10x10 boards, "
        "auto to pick by observation shape",
    )
    hidden_sizes: tuple[int, ...] = option((256,), "hidden layer sizes of the mlp torso")
    use_lstm: bool = option(False, "add an LSTM core (its state resets at episode starts)")
    lstm_size: int = option(256, "LSTM hidden size")
    precision: Literal["float32", "bfloat16"] = option(
        "float32", "learner forward passes in float32, or bfloat16 autocast (GPUs with bfloat16: Ampere and "
        "newer); parameters, losses and V-trace stay float32 (docs/devices.md#mixed-precision)"
    )
    publish_every: int = option(1, "learner steps between parameter publishes")
    pull_every: int = option(1, "actor unrolls between parameter pulls")

    def __post_init__(self) -> None:
        positive_ints = ("unroll_length", "batch_size", "lstm_size", "publish_every", "pull_every")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ValueError(f"agent.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"agent.discount must be in [0, 1], got {self.discount}")
        if not 0.0 <= self.lambda_ <= 1.0:
            raise ValueError(f"agent.lambda_ must be in [0, 1], got {self.lambda_}")
        for name in ("learning_rate", "epsilon", "max_grad_norm", "clip_rho_threshold", "clip_pg_rho_threshold",
                     "ratio_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"agent.{name} must be > 0, got {getattr(self, name)}")
        for name in ("entropy_cost", "baseline_cost", "rmsprop_momentum"):
            if getattr(self, name) < 0:
                raise ValueError(f"agent.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.rmsprop_alpha < 1.0:
            raise ValueError(f"agent.rmsprop_alpha must be in (0, 1), got {self.rmsprop_alpha}")
        if self.reward_clip is not None and self.reward_clip <= 0:
            raise ValueError(f"agent.reward_clip must be > 0 or none, got {self.reward_clip}")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"agent.hidden_sizes must be positive sizes, got {self.hidden_sizes}")

    @classmethod
    def atari(cls, **overrides) -> "ImpalaConfig":
        """The paper's Atari setting with the torso that fits the learner's device (``auto``:
        the deep ResNet on a GPU, the shallow one on a CPU, where the deep one's update is ~25x
        slower), rewards clipped to [-1, 1]."""
        return cls(**{"torso": "auto", "reward_clip": 1.0, **overrides})

    @classmethod
    def classic_control(cls, **overrides) -> "ImpalaConfig":
        """Our defaults for small vector-observation tasks (CartPole, Acrobot, ...).

        Chosen by a sweep on CartPole-v1 (docs/benchmarks/learning.md): more, smaller
        updates than the paper (B=8, 160 frames each) with Adam, and a 10x smaller
        entropy bonus, which stopped the late-run policy collapses we saw at 0.01.
        The clipped policy loss makes these large, frequent updates robust to the
        policy lag of a cluster: with the paper's loss the same settings collapse
        once the mean lag passes ~3 versions; with it they reach 500 at 0 to 13.
        """
        defaults = dict(
            torso="mlp",
            hidden_sizes=(64, 64),
            unroll_length=20,
            batch_size=8,
            learning_rate=3e-3,
            optimizer="adam",
            epsilon=1e-8,
            entropy_cost=0.001,
            policy_loss="clipped",
        )
        return cls(**{**defaults, **overrides})
