"""IMPALA's learning half: one V-trace step on a batch of unrolls (in the learner).

``ImpalaUpdater.update`` turns a ``[T + 1, B, ...]`` batch of unrolls into one RMSProp/Adam
step on the IMPALA loss (``herd.losses.impala``: V-trace targets, policy gradient, baseline,
entropy), and ``weights()`` is what the learner publishes for the actors' next ``load``.
The network and optimizer live on the learner's device; the batch is copied there once
(``herd.agents.torch_util.batch_to_device``) and the forward pass may run in bfloat16
(``agent.precision``), while the loss and V-trace always run in float32.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from herd import types as ht
from herd.agents.base import EnvInfo, SampledBatch, UpdateResult
from herd.agents.impala.acting import build_network
from herd.agents.impala.config import ImpalaConfig
from herd.agents.torch_util import batch_to_device, check_precision, mixed_precision, scalars_to_host, weights_of
from herd.losses.impala import impala_loss

# The fields an update reads, with the dtypes the loss wants (None: as stored, e.g. uint8 frames).
_FIELDS = {ht.OBSERVATION: None, ht.STEP_TYPE: np.int64, ht.REWARD: np.float32, ht.DISCOUNT: np.float32,
           ht.ACTION: np.int64, ht.BEHAVIOUR_LOGITS: np.float32}


class ImpalaUpdater:
    """The learner's gradient step: V-trace targets, IMPALA loss, clipping, schedule."""

    def __init__(self, config: ImpalaConfig, env: EnvInfo, total_env_steps: int, seed: int,
                 device: torch.device = torch.device("cpu")) -> None:
        check_precision(config.precision, device)
        torch.manual_seed(seed)
        self.config = config
        self.device = device
        # Initialised on the CPU, then moved: a seed gives the same initial weights on every device.
        self.network = build_network(config, env).to(device)
        params = self.network.parameters()
        if config.optimizer == "rmsprop":
            self.optimizer: torch.optim.Optimizer = torch.optim.RMSprop(
                params,
                lr=config.learning_rate,
                alpha=config.rmsprop_alpha,
                eps=config.epsilon,
                momentum=config.rmsprop_momentum,
            )
        else:
            self.optimizer = torch.optim.Adam(params, lr=config.learning_rate, eps=config.epsilon)
        self.total_env_steps = max(1, total_env_steps)
        self.frames = 0  # environment steps consumed by updates (T * B per update)
        self.updates = 0

    def learning_rate(self) -> float:
        """Linear decay to zero over the run's environment steps (or constant)."""
        if self.config.lr_schedule == "constant":
            return self.config.learning_rate
        return self.config.learning_rate * max(0.0, 1.0 - self.frames / self.total_env_steps)

    def update(self, sampled: SampledBatch) -> UpdateResult:
        cfg = self.config
        core_keys = sorted(k for k in sampled.data if k.startswith(ht.CORE_STATE_PREFIX))
        batch = batch_to_device(sampled.data, self.device, {**_FIELDS, **{k: None for k in core_keys}})
        obs = batch[ht.OBSERVATION]  # [T+1, B, ...]
        step_type = batch[ht.STEP_TYPE]  # [T+1, B]
        reward = batch[ht.REWARD]
        discount = batch[ht.DISCOUNT]
        action = batch[ht.ACTION]
        behaviour_logits = batch[ht.BEHAVIOUR_LOGITS]
        core = tuple(batch[k][0] for k in core_keys)  # [1, B, H] -> [B, H]
        unroll, batch_size = step_type.shape

        with mixed_precision(cfg.precision, self.device):
            out, _ = self.network(obs, step_type == ht.FIRST, core)
        logits = out.policy_logits.float()  # [T+1, B, A]; float32 from here on (no-op without autocast)
        values = out.baseline.float()  # [T+1, B]
        # Transition t -> t+1 uses a_t, r_{t+1} and d_{t+1}; the last entry only bootstraps.
        r_t = reward[1:]
        if cfg.reward_clip is not None:
            r_t = r_t.clamp(-cfg.reward_clip, cfg.reward_clip)
        loss = impala_loss(
            target_logits=logits[:-1],
            values=values[:-1],
            bootstrap_value=values[-1],
            behaviour_logits=behaviour_logits[:-1],
            actions=action[:-1],
            rewards=r_t,
            discounts=cfg.discount * discount[1:],
            mask=step_type[:-1] != ht.LAST,  # LAST -> FIRST is a reset, not a transition
            baseline_cost=cfg.baseline_cost,
            entropy_cost=cfg.entropy_cost,
            clip_rho_threshold=cfg.clip_rho_threshold,
            clip_pg_rho_threshold=cfg.clip_pg_rho_threshold,
            lambda_=cfg.lambda_,
            policy_loss=cfg.policy_loss,
            ratio_clip=cfg.ratio_clip,
        )

        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self.frames += (unroll - 1) * batch_size

        metrics = scalars_to_host({
            "total_loss": loss.total,
            "pg_loss": loss.pg_loss,
            "baseline_loss": loss.baseline_loss,
            "entropy_loss": loss.entropy_loss,
            "grad_norm": grad_norm,
            "learning_rate": lr,
            **loss.extras,
        })
        return UpdateResult(metrics)

    def weights(self) -> dict[str, np.ndarray]:
        return weights_of(self.network)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "frames": self.frames,
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.frames = int(state["frames"])
        self.updates = int(state["updates"])
