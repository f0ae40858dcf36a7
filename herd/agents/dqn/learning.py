"""Ape-X DQN's learning half: one double-Q step on a prioritized batch (in the learner).

``DQNUpdater.update`` takes a batch of n-step transitions (``herd.adders``:
``observation [2, B, ...]``, ``action``, ``reward``, ``discount`` ``[1, B]``) with the
probabilities they were sampled with, and returns the loss terms and new priorities
``|TD| + ε`` for the sampled keys. The loss is the Huber loss of the double-Q TD error,
weighted by importance weights ``(N P(i))^-β`` with β annealed from 0.4 to 1 over the run.
The online and target networks live on the learner's device; the forward passes may run in
bfloat16 (``agent.precision``), the TD targets, loss and priorities always in float32.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np
import torch

from herd import types as ht
from herd.agents.base import EnvInfo, SampledBatch, UpdateResult
from herd.agents.dqn.config import DQNConfig
from herd.agents.dqn.networks import make_q_network
from herd.agents.torch_util import batch_to_device, check_precision, mixed_precision, scalars_to_host, weights_of
from herd.losses import dqn as losses

# The fields an update reads, with the dtypes the loss wants (None: as stored, e.g. uint8 frames).
_FIELDS = {ht.OBSERVATION: None, ht.ACTION: np.int64, ht.REWARD: np.float32, ht.DISCOUNT: np.float32}


class DQNUpdater:
    """Double Q-learning with a target network, prioritized replay and Adam."""

    def __init__(self, config: DQNConfig, env: EnvInfo, expected_updates: int, seed: int,
                 device: torch.device = torch.device("cpu")) -> None:
        check_precision(config.precision, device)
        torch.manual_seed(seed)
        self.config = config
        self.device = device
        # Initialised on the CPU, then moved: a seed gives the same initial weights on every device.
        self.network = make_q_network(config, env.observation_shape, env.num_actions).to(device)
        self.target = copy.deepcopy(self.network).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate, eps=config.adam_epsilon)
        self.expected_updates = max(1, expected_updates)
        self.updates = 0

    def learning_rate(self) -> float:
        if self.config.lr_schedule == "constant":
            return self.config.learning_rate
        return self.config.learning_rate * max(0.0, 1.0 - self.updates / self.expected_updates)

    def beta(self) -> float:
        return losses.annealed_beta(self.config.importance_exponent, self.updates / self.expected_updates)

    def update(self, sampled: SampledBatch) -> UpdateResult:
        cfg = self.config
        batch = batch_to_device(sampled.data, self.device, _FIELDS)
        obs = batch[ht.OBSERVATION]  # [2, B, ...]: x_{t-1} and x_t (n steps later)
        action = batch[ht.ACTION][0]  # [B]
        r_t = batch[ht.REWARD][0]
        discount_t = batch[ht.DISCOUNT][0]
        b = action.shape[0]

        with mixed_precision(cfg.precision, self.device):
            q_both = self.network(obs.flatten(0, 1))  # one pass over [2B, ...]
            with torch.no_grad():
                q_t_target = self.target(obs[1])
        q_both, q_t_target = q_both.float(), q_t_target.float()  # float32 from here on (no-op without autocast)
        q_tm1, q_t_online = q_both[:b], q_both[b:].detach()
        with torch.no_grad():
            target = losses.double_q_target(r_t, discount_t, q_t_target, q_t_online)
        q_tm1_a = q_tm1.gather(1, action[:, None]).squeeze(1)
        td = target - q_tm1_a
        beta = self.beta()
        # In float64 on the host (tiny, and MPS has no float64), then to the device as float32.
        weights = losses.importance_weights(
            torch.from_numpy(np.asarray(sampled.probabilities, np.float64)), max(1, sampled.table_size), beta
        ).float().to(self.device)
        loss = (weights * losses.huber(td, cfg.huber_delta)).mean()

        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % cfg.target_update_period == 0:
            self.target.load_state_dict(self.network.state_dict())

        priorities = losses.priorities_from_td(td.detach(), cfg.priority_epsilon).cpu().numpy().astype(np.float64)
        metrics = scalars_to_host({
            "total_loss": loss,
            "q_loss": losses.huber(td.detach(), cfg.huber_delta).mean(),
            "grad_norm": grad_norm,
            "learning_rate": lr,
            "mean_q": q_tm1_a.detach().mean(),
            "mean_abs_td": td.detach().abs().mean(),
            "importance_beta": beta,
            "mean_importance_weight": weights.mean(),
        })
        return UpdateResult(metrics, priorities)

    def weights(self) -> dict[str, np.ndarray]:
        return weights_of(self.network)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.network.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
