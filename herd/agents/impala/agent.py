"""IMPALA's two halves: the acting policy (in actors) and the V-trace update (in the learner).

Data flow: ``ImpalaPolicy.step`` picks actions for N environments at once and
returns the behaviour logits the actor records in the trajectory;
``ImpalaUpdater.update`` turns a ``[T + 1, B, ...]`` batch of such trajectories
into one RMSProp/Adam step on the V-trace loss, and ``weights()`` is what the
learner publishes for the actors' next ``load``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import torch

from herd import types as ht
from herd.agents.base import EnvInfo, PolicyOutput
from herd.agents.impala.config import ImpalaConfig
from herd.agents.impala.networks import make_network
from herd.losses.impala import impala_loss


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


def _tensor(array: np.ndarray, dtype: Any = None) -> torch.Tensor:
    """A torch view of a batch field; batches decoded off the wire are read-only, so those are copied."""
    array = np.asarray(array, dtype=dtype)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


def _weights_of(network: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in network.state_dict().items()}


def _load_weights(network: torch.nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    with warnings.catch_warnings():
        # Published arrays are read-only and shared; load_state_dict copies them.
        warnings.simplefilter("ignore", UserWarning)
        state = {k: torch.as_tensor(v) for k, v in weights.items()}
    network.load_state_dict(state, strict=True)


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
        _load_weights(self.network, weights)
        self.version = version


class ImpalaUpdater:
    """The learner's gradient step: V-trace targets, IMPALA loss, clipping, schedule."""

    def __init__(self, config: ImpalaConfig, env: EnvInfo, total_env_steps: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.config = config
        self.network = build_network(config, env)
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

    def update(self, batch: Mapping[str, np.ndarray]) -> dict[str, float]:
        cfg = self.config
        obs = _tensor(batch[ht.OBSERVATION])  # [T+1, B, ...]
        step_type = _tensor(batch[ht.STEP_TYPE], np.int64)  # [T+1, B]
        reward = _tensor(batch[ht.REWARD], np.float32)
        discount = _tensor(batch[ht.DISCOUNT], np.float32)
        action = _tensor(batch[ht.ACTION], np.int64)
        behaviour_logits = _tensor(batch[ht.BEHAVIOUR_LOGITS], np.float32)
        core = tuple(
            _tensor(batch[k])[0]  # [1, B, H] -> [B, H]
            for k in sorted(k for k in batch if k.startswith(ht.CORE_STATE_PREFIX))
        )
        unroll, batch_size = step_type.shape

        out, _ = self.network(obs, step_type == ht.FIRST, core)
        values = out.baseline  # [T+1, B]
        # Transition t -> t+1 uses a_t, r_{t+1} and d_{t+1}; the last entry only bootstraps.
        r_t = reward[1:]
        if cfg.reward_clip is not None:
            r_t = r_t.clamp(-cfg.reward_clip, cfg.reward_clip)
        loss = impala_loss(
            target_logits=out.policy_logits[:-1],
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

        metrics = {
            "total_loss": loss.total.item(),
            "pg_loss": loss.pg_loss.item(),
            "baseline_loss": loss.baseline_loss.item(),
            "entropy_loss": loss.entropy_loss.item(),
            "grad_norm": float(grad_norm),
            "learning_rate": lr,
        }
        metrics.update({k: float(v) for k, v in loss.extras.items()})
        return metrics

    def weights(self) -> dict[str, np.ndarray]:
        return _weights_of(self.network)

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
