"""Ape-X DQN's acting half: ε-greedy over Q-values, one ε per environment (in actors).

Every environment of every actor gets its own ε from the ladder
``ε_i = 0.4^(1 + 7 i / (N - 1))`` over all ``N`` environments of the run, so a few explore
a lot and most hardly at all. The Q-values go to the adder, which computes each
transition's initial priority from the actor's own n-step TD error (:func:`td_priorities`).
The network runs on the actors' device (``actor_device``, the CPU by default).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from herd.agents.base import EnvInfo, PolicyOutput
from herd.agents.dqn.config import DQNConfig
from herd.agents.dqn.networks import make_q_network
from herd.agents.torch_util import load_weights
from herd.losses.dqn import epsilon_ladder

Q_VALUES = "q_values"  # extra the policy hands the adder: float32 [N, A]


class DQNPolicy:
    """Batched ε-greedy policy with a fixed ε per environment."""

    def __init__(self, config: DQNConfig, env: EnvInfo, epsilons: np.ndarray, seed: int,
                 device: torch.device = torch.device("cpu")) -> None:
        self.config = config
        self.device = device
        self.network = make_q_network(config, env.observation_shape, env.num_actions).to(device).eval()
        self.num_actions = env.num_actions
        self.epsilons = np.asarray(epsilons, np.float64)
        self.version = -1
        self._rng = np.random.default_rng(seed)

    @classmethod
    def for_envs(cls, config: DQNConfig, env: EnvInfo, env_ids: range, total_envs: int, seed: int,
                 device: torch.device = torch.device("cpu")) -> "DQNPolicy":
        """The policy of the environments ``env_ids`` of ``total_envs``, each with its rung of the ladder."""
        eps = [epsilon_ladder(i, total_envs, config.epsilon_base, config.epsilon_alpha) for i in env_ids]
        return cls(config, env, np.array(eps), seed, device)

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        return ()

    @torch.inference_mode()
    def step(
        self, observation: np.ndarray, first: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[PolicyOutput, tuple[np.ndarray, ...]]:
        # On the CPU ``.to`` and ``.cpu()`` return the tensor itself: no copies.
        q = self.network(torch.from_numpy(observation).to(self.device)).cpu().numpy()  # [N, A]
        n = len(q)
        eps = self.epsilons if len(self.epsilons) == n else np.full(n, self.epsilons[0])
        action = q.argmax(axis=1).astype(np.int64)
        explore = self._rng.random(n) < eps
        if explore.any():
            action[explore] = self._rng.integers(0, self.num_actions, int(explore.sum()))
        return PolicyOutput(action=action, extras={Q_VALUES: q.astype(np.float32, copy=False)}), ()

    def load(self, version: int, weights: Mapping[str, np.ndarray]) -> None:
        load_weights(self.network, weights)
        self.version = version


def td_priorities(epsilon: float):
    """The adder's priority function: ``|R_t + γ_t max_a Q(x_{t+n}, a) - Q(x_t, a_t)| + epsilon``,
    with the acting network's values (Ape-X computes initial priorities in the actors)."""

    def priorities(first: dict, action: np.ndarray, reward: np.ndarray, discount: np.ndarray, last: dict) -> np.ndarray:
        q_tm1 = first[Q_VALUES][np.arange(len(action)), action]
        target = reward + discount * last[Q_VALUES].max(axis=1)
        return np.abs(target - q_tm1) + epsilon

    return priorities
