"""IMPALA's acting half: a batched stochastic policy over N environments (in actors).

``ImpalaPolicy.step`` samples actions from softmax(logits) and returns the behaviour
logits the adder records; the learner's V-trace corrects for the lag between them and
the current policy. ``ImpalaEvalPolicy`` acts greedily, for evaluation rounds. Both run
their network on the actors' device (``actor_device``, the CPU by default); observations
go in and logits come out as numpy arrays.
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

    def __init__(self, config: ImpalaConfig, env: EnvInfo, seed: int,
                 device: torch.device = torch.device("cpu")) -> None:
        self.config = config
        self.device = device
        self.network = build_network(config, env).to(device).eval()
        self.version = -1  # no published weights loaded yet
        self._rng = np.random.default_rng(seed)

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        return tuple(s.numpy() for s in self.network.initial_state(batch_size))

    def _forward(self, observation: np.ndarray, first: np.ndarray,
                 state: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, tuple[np.ndarray, ...]]:
        """Logits ``[N, A]`` (on the device) and the new core state (numpy) of one step for N environments."""
        # One time step for N environments: add the leading time axis, [1, N, ...].
        # On the CPU ``.to`` returns the tensor itself and ``.cpu()`` below too: no copies.
        obs = torch.from_numpy(observation).unsqueeze(0).to(self.device)
        first_t = torch.from_numpy(first).unsqueeze(0).to(self.device)
        core = tuple(torch.from_numpy(s).to(self.device) for s in state)
        out, new_core = self.network(obs, first_t, core)
        return out.policy_logits[0], tuple(s.cpu().numpy() for s in new_core)

    @torch.inference_mode()
    def step(
        self, observation: np.ndarray, first: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[PolicyOutput, tuple[np.ndarray, ...]]:
        logits_t, new_core = self._forward(observation, first, state)
        logits = logits_t.cpu().numpy()  # [N, A]
        action = sample_categorical(logits, self._rng)
        return PolicyOutput(action=action, extras={ht.BEHAVIOUR_LOGITS: logits}), new_core

    def load(self, version: int, weights: Mapping[str, np.ndarray]) -> None:
        load_weights(self.network, weights)
        self.version = version


class ImpalaEvalPolicy(ImpalaPolicy):
    """The evaluation policy: the most probable action (no exploration)."""

    @torch.inference_mode()
    def step(
        self, observation: np.ndarray, first: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[PolicyOutput, tuple[np.ndarray, ...]]:
        logits, new_core = self._forward(observation, first, state)
        action = logits.argmax(dim=-1).cpu().numpy().astype(np.int64)
        return PolicyOutput(action=action, extras={}), new_core
