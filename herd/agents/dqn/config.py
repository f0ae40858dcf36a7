"""Ape-X DQN hyper-parameters (Horgan et al. 2018, arXiv 1803.00933): one frozen dataclass.

Two presets, both recorded here: ``paper()`` is the paper's Atari setting (batch 512,
n = 3, Adam at 0.00025 / 4, target every 2,500 updates, 2M-item replay, gradient norm
clipped at 40, rewards clipped to [-1, 1]); ``classic_control()`` holds our defaults for
small vector-observation tasks, chosen on the 2-core development machine (README).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from herd.config import option


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """Everything the Ape-X actors, the prioritized table and the double-Q learner need."""

    n_step: int = option(3, "steps of the n-step return R_t = sum_k gamma^k r_{t+k+1}, bootstrapped at t+n")
    discount: float = option(0.99, "discount factor gamma")
    batch_size: int = option(512, "transitions per learner batch")
    learning_rate: float = option(0.00025 / 4, "Adam learning rate")
    lr_schedule: Literal["constant", "linear"] = option(
        "constant", "constant, or linear decay to 0 over the updates the run will make (a steadier final policy)"
    )
    adam_epsilon: float = option(1.5e-4, "Adam epsilon")
    max_grad_norm: float = option(40.0, "global-norm gradient clipping threshold")
    huber_delta: float = option(1.0, "Huber loss: quadratic within +-delta of the target, linear outside")
    target_update_period: int = option(2500, "learner updates between copies of the online network to the target")
    replay_size: int = option(2_000_000, "transitions the prioritized table holds (oldest evicted first)")
    min_replay_size: int = option(50_000, "transitions in the table before learning starts")
    samples_per_insert: float = option(
        8.0, "sampled transitions per inserted one, held by the table's SampleToInsertRatio limiter "
        "whatever the number of actors (updates per env step = samples_per_insert / batch_size)"
    )
    samples_per_insert_tolerance: float = option(
        0.1, "allowed drift of the ratio, as a fraction of samples_per_insert * min_replay_size (Acme's rule)"
    )
    priority_exponent: float = option(0.6, "alpha: items are sampled with P(i) = p_i^alpha / sum_j p_j^alpha")
    importance_exponent: float = option(0.4, "beta at the start: importance weights (N P(i))^-beta, annealed to 1")
    priority_epsilon: float = option(1e-6, "added to |TD error| so no priority is zero")
    epsilon_base: float = option(0.4, "exploration ladder: environment i of N acts with eps_i = base^(1 + alpha i/(N-1))")
    epsilon_alpha: float = option(7.0, "exploration ladder exponent alpha")
    eval_epsilon: float = option(0.0, "epsilon of the evaluation policy")
    torso: Literal["mlp", "shallow"] = option("shallow", "network torso: mlp (vectors) or shallow (images, Nature DQN-sized)")
    hidden_sizes: tuple[int, ...] = option((512,), "hidden sizes of the mlp torso; the dueling heads add one layer each")
    dueling: bool = option(True, "dueling heads: Q = V + A - mean(A)")
    reward_clip: Optional[float] = option(1.0, "clip rewards to [-x, x] in the actor's n-step return; none to disable")
    steps_per_write: int = option(4, "actor steps whose transitions go to the replay in one insert")
    precision: Literal["float32", "bfloat16"] = option(
        "float32", "learner forward passes in float32, or bfloat16 autocast (GPUs with bfloat16: Ampere and "
        "newer); parameters, TD targets and the loss stay float32 (docs/devices.md#mixed-precision)"
    )
    publish_every: int = option(10, "learner updates between parameter publishes")
    pull_every: int = option(1, "actor writes between parameter pulls")

    def __post_init__(self) -> None:
        for name in ("n_step", "batch_size", "target_update_period", "replay_size", "min_replay_size",
                     "steps_per_write", "publish_every", "pull_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"agent.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"agent.discount must be in [0, 1], got {self.discount}")
        for name in ("learning_rate", "adam_epsilon", "max_grad_norm", "huber_delta", "samples_per_insert",
                     "samples_per_insert_tolerance"):
            if getattr(self, name) <= 0:
                raise ValueError(f"agent.{name} must be > 0, got {getattr(self, name)}")
        for name in ("priority_exponent", "importance_exponent", "priority_epsilon"):
            if getattr(self, name) < 0:
                raise ValueError(f"agent.{name} must be >= 0, got {getattr(self, name)}")
        if self.importance_exponent > 1:
            raise ValueError(f"agent.importance_exponent must be <= 1, got {self.importance_exponent}")
        for name in ("epsilon_base", "eval_epsilon"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"agent.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.epsilon_alpha < 0:
            raise ValueError(f"agent.epsilon_alpha must be >= 0, got {self.epsilon_alpha}")
        if self.min_replay_size > self.replay_size:
            raise ValueError(f"agent.min_replay_size ({self.min_replay_size}) exceeds agent.replay_size ({self.replay_size})")
        if self.batch_size > self.min_replay_size:
            raise ValueError(f"agent.batch_size ({self.batch_size}) exceeds agent.min_replay_size ({self.min_replay_size})")
        if self.reward_clip is not None and self.reward_clip <= 0:
            raise ValueError(f"agent.reward_clip must be > 0 or none, got {self.reward_clip}")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"agent.hidden_sizes must be positive sizes, got {self.hidden_sizes}")

    @classmethod
    def paper(cls, **overrides) -> "DQNConfig":
        """The paper's Atari setting (its Table 1 and appendix), for images."""
        return cls(**overrides)

    @classmethod
    def classic_control(cls, **overrides) -> "DQNConfig":
        """Our defaults for small vector-observation tasks (CartPole, Acrobot, ...): smaller and faster
        than the paper's: batch 128, a 100k replay that starts at 1,000, 64 sampled per inserted
        transition (one update per 2 env steps, as Stable-Baselines3's tuned CartPole DQN), a target every 250 updates, no reward clipping,
        and the learning rate decayed linearly to 0 over the run."""
        defaults = dict(
            torso="mlp",
            hidden_sizes=(256, 256),
            batch_size=128,
            learning_rate=1e-3,
            lr_schedule="linear",
            adam_epsilon=1e-8,
            max_grad_norm=10.0,
            target_update_period=250,
            replay_size=100_000,
            min_replay_size=1_000,
            samples_per_insert=64.0,
            reward_clip=None,
            publish_every=5,
        )
        return cls(**{**defaults, **overrides})
