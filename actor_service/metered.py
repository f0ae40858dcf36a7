"""Metrics around the actor's policy and weight source, without touching the actor loop.

Where it sits: ``actor_service.main`` wraps the ``Policy`` the ``Actor`` steps (inference
latency, once per batched step) and the ``VariableSource`` it pulls weights from (how far
behind the parameter server it was at each pull); the loop itself stays metric-free, so
``herd train`` runs the same ``Actor`` untouched.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import numpy as np

from herd.agents.base import Policy, PolicyOutput
from herd.interfaces import Params, VariableSource
from herd.telemetry.metrics import ActorMetrics


class TimedPolicy:
    """A ``Policy`` whose ``step`` is observed in ``herd_actor_inference_seconds``."""

    def __init__(self, policy: Policy, metrics: ActorMetrics) -> None:
        self.policy = policy
        self._observe = metrics.inference.observe

    @property
    def version(self) -> int:
        return self.policy.version

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        return self.policy.initial_state(batch_size)

    def step(
        self, observation: np.ndarray, first: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[PolicyOutput, tuple[np.ndarray, ...]]:
        t0 = time.perf_counter()
        out = self.policy.step(observation, first, state)
        self._observe(time.perf_counter() - t0)
        return out

    def load(self, version: int, weights: Mapping[str, np.ndarray]) -> None:
        self.policy.load(version, weights)

    def __getattr__(self, name: str) -> Any:  # anything else the wrapped policy offers
        return getattr(self.policy, name)


class LagMeter:
    """A ``VariableSource`` that sets ``herd_actor_policy_lag`` at every pull.

    The actor asks for ``min_version = its version + 1``: an answer with version v means
    its weights were ``v - (min_version - 1)`` versions behind; no answer means current (0).
    The first pull (no weights yet) is not a lag.
    """

    def __init__(self, source: VariableSource, metrics: ActorMetrics) -> None:
        self.source = source
        self._lag = metrics.policy_lag

    def fetch(self, name: str, min_version: int = 0) -> Optional[Params]:
        params = self.source.fetch(name, min_version)
        if min_version > 0:
            self._lag.set(params.version - (min_version - 1) if params is not None else 0)
        return params
