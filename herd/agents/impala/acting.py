"""IMPALA's acting half: a batched stochastic policy over N environments (in actors).

``ImpalaPolicy.step`` samples actions from softmax(logits) and returns the behaviour
logits the adder records; the learner's V-trace corrects for the lag between them and
the current policy. ``ImpalaEvalPolicy`` acts greedily, for evaluation rounds.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from herd import types as ht
from herd.agents.base import EnvInfo, PolicyOutput
from herd.agents.impala.config import ImpalaConfig
from herd.agents.impala.networks import make_network
from herd.agents.torch_util import load_weights


def build_network(config: ImpalaConfig, env: EnvInfo) -> torch.nn.Module:
    """The agent's network for this environment, as the config describes it."""
    return make_network(
        observation_shape=tuple(env.observation_shape),
        num_actions=env.num_actions,
        torso=config.torso,
        hidden_sizes=tuple(config.hidden_sizes),
        use_lstm=config.use_lstm,
        lstm_size=config.lstm_size,
    )


def sample_categorical(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of ``logits`` ``[N, A]``, drawn from softmax(logits); int64 ``[N]``.

    Inverse-CDF sampling on the unnormalised cumulative weights, in numpy: on the
    batch sizes actors use this is several times cheaper than ``torch.multinomial``.
    A zero-probability action is never drawn (a uniform draw below the total lands
    strictly inside a bucket of positive width).
    """
    weights = np.exp(logits - logits.max(axis=1, keepdims=True), dtype=np.float64)
    cdf = np.cumsum(weights, axis=1)
    u = rng.random(len(logits)) * cdf[:, -1]
    return np.minimum((cdf <= u[:, None]).sum(axis=1), logits.shape[1] - 1).astype(np.int64)


class ImpalaPolicy:
    """Batched stochastic policy of an actor: samples from softmax(logits)."""

    def __init__(self, config: ImpalaConfig, env: EnvInfo, seed: int) -> None:
        self.config = config
        self.network = build_network(config, env).eval()
        self.version = -1  # no published weights loaded yet
        self._rng = np.random.default_rng(seed)

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        return tuple(s.numpy() for s in self.network.initial_state(batch_size))

    @torch.inference_mode()
    def step(
        self, observation: np.ndarray, first: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[PolicyOutput, tuple[np.ndarray, ...]]:
        # One time step for N environments: add the leading time axis, [1, N, ...].
        obs = torch.from_numpy(observation).unsqueeze(0)
        first_t = torch.from_numpy(first).unsqueeze(0)
        core = tuple(torch.from_numpy(s) for s in state)
        out, new_core = self.network(obs, first_t, core)
        logits = out.policy_logits[0].numpy()  # [N, A]
        action = sample_categorical(logits, self._rng)
        return PolicyOutput(action=action, extras={ht.BEHAVIOUR_LOGITS: logits}), tuple(s.numpy() for s in new_core)

    def load(self, version: int, weights: Mapping[str, np.ndarray]) -> None:
        load_weights(self.network, weights)
        self.version = version




class ImpalaEvalPolicy(ImpalaPolicy):
    """The evaluation policy: the most probable action (no exploration)."""

    @torch.inference_mode()
    def step(
        self, observation: np.ndarray, first: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[PolicyOutput, tuple[np.ndarray, ...]]:
        obs = torch.from_numpy(observation).unsqueeze(0)
        first_t = torch.from_numpy(first).unsqueeze(0)
        core = tuple(torch.from_numpy(s) for s in state)
        out, new_core = self.network(obs, first_t, core)
        action = out.policy_logits[0].argmax(dim=-1).numpy().astype(np.int64)
        return PolicyOutput(action=action, extras={}), tuple(s.numpy() for s in new_core)
