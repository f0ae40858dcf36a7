"""The actor loop: N environments, batched inference, experience handed to the agent's adder.

Where it sits: parameters come in from a ``VariableSource`` (the parameter store or its
gRPC client); every batched step goes to the agent's adder (``herd.adders``), which writes
items to a ``TrajectoryWriter`` (a replay table or its gRPC client): unrolls for IMPALA,
n-step transitions for DQN. The same class runs in ``herd train`` and in ``herd serve actor``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np

from herd import types as ht
from herd.adders import Adder
from herd.agents.base import Policy, load_newer
from herd.envs.batched import BatchedEnv, BatchedTimeStep, EpisodeTracker
from herd.interfaces import VariableSource


def env_seed(run_seed: int, actor_index: int, envs_per_actor: int) -> int:
    """Seed of an actor's first environment; environment i of it gets ``seed + i``.

    Actors of one run get disjoint seed ranges; runs with different seeds are
    1,000,003 apart, so they never share a seed unless a run has a million envs.
    """
    return run_seed * 1_000_003 + actor_index * envs_per_actor


@dataclasses.dataclass
class ActorStats:
    """Running totals of one actor."""

    env_steps: int = 0
    episodes: int = 0
    unrolls: int = 0
    inference_seconds: float = 0.0
    env_seconds: float = 0.0
    write_seconds: float = 0.0


class Actor:
    """Steps ``env`` with ``policy`` and hands every step to ``adder``."""

    def __init__(
        self,
        env: BatchedEnv,
        policy: Policy,
        adder: Adder,
        variables: VariableSource,
        *,
        actor_id: str = "actor-0",
        task: str = "",
        param_name: str = "policy",
        pull_every: int = 1,
        on_episode: Optional[Callable[[ht.EpisodeRecord], None]] = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.adder = adder
        self.variables = variables
        self.actor_id = actor_id
        self.task = task
        self.param_name = param_name
        self.pull_every = pull_every
        self.on_episode = on_episode
        self.stats = ActorStats()
        self._tracker = EpisodeTracker(env.num_envs)
        self._started = False
        self._state: tuple[np.ndarray, ...] = ()
        self._last_action: np.ndarray = np.zeros(0)

    # -- parameters -------------------------------------------------------------------

    def sync_params(self, wait: bool = False, poll_seconds: float = 0.05) -> bool:
        """Pulls newer weights if there are any; with ``wait``, blocks until the first version."""
        while True:
            if load_newer(self.policy, self.variables, self.param_name):
                return True
            if not wait or self.policy.version >= 0:
                return False
            time.sleep(poll_seconds)

    # -- acting -----------------------------------------------------------------------

    def _act(self, ts: BatchedTimeStep) -> tuple:
        """Chooses actions for ``ts``; returns the policy output and the state it acted from."""
        t0 = time.perf_counter()
        state = self._state
        out, self._state = self.policy.step(ts.observation, ts.step_type == ht.FIRST, state)
        self.stats.inference_seconds += time.perf_counter() - t0
        self._last_action = out.action
        return out, state

    def run_unroll(self) -> int:
        """Steps every environment ``adder.steps_per_write`` times (one write of the adder).

        Returns the number of environment steps taken (resets are not counted).
        """
        if not self._started:
            self.sync_params(wait=True)
            self._state = self.policy.initial_state(self.env.num_envs)
            ts = self.env.reset()
            out, state = self._act(ts)
            self.adder.start(ts, out, state, self.policy.version)
            self._started = True
        elif self.stats.unrolls % self.pull_every == 0:
            self.sync_params()
        steps_before = self.stats.env_steps
        version = self.policy.version
        for _ in range(self.adder.steps_per_write):
            t0 = time.perf_counter()
            ts = self.env.step(self._last_action)
            self.stats.env_seconds += time.perf_counter() - t0
            self.stats.env_steps += int(np.count_nonzero(ts.step_type != ht.FIRST))
            self._report_episodes(ts)
            out, state = self._act(ts)
            t0 = time.perf_counter()
            self.adder.add(ts, out, state, version)
            self.stats.write_seconds += time.perf_counter() - t0
        self.stats.unrolls += 1
        return self.stats.env_steps - steps_before

    def _report_episodes(self, ts: BatchedTimeStep) -> None:
        for _, episode_return, length in self._tracker.update(ts):
            self.stats.episodes += 1
            if self.on_episode is not None:
                self.on_episode(
                    ht.EpisodeRecord(
                        env_steps=self.stats.env_steps,
                        episode_return=float(episode_return),
                        episode_length=int(length),
                        task=self.task,
                        actor_id=self.actor_id,
                    )
                )
