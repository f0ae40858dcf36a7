"""The actor loop: N environments, batched inference, unrolls written to replay.

Where it sits: parameters come in from a ``VariableSource`` (the parameter store
or its gRPC client), trajectories go out to a ``TrajectoryWriter`` (a replay
table or its gRPC client). The same class runs in ``herd train`` and in
``herd serve actor``.

An unroll holds T + 1 steps of every environment; consecutive unrolls overlap by
one step because the last step of an unroll only serves as the bootstrap value,
and must also be the first step (with its action) of the next one.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np

from herd import types as ht
from herd.agents.base import Policy
from herd.envs.batched import BatchedEnv, BatchedTimeStep, EpisodeTracker
from herd.interfaces import TrajectoryWriter, VariableSource


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
    """Steps ``env`` with ``policy`` and writes ``[T + 1, N, ...]`` unrolls to ``writer``."""

    def __init__(
        self,
        env: BatchedEnv,
        policy: Policy,
        writer: TrajectoryWriter,
        variables: VariableSource,
        unroll_length: int,
        *,
        actor_id: str = "actor-0",
        task: str = "",
        param_name: str = "policy",
        pull_every: int = 1,
        on_episode: Optional[Callable[[ht.EpisodeRecord], None]] = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.writer = writer
        self.variables = variables
        self.unroll_length = unroll_length
        self.actor_id = actor_id
        self.task = task
        self.param_name = param_name
        self.pull_every = pull_every
        self.on_episode = on_episode
        self.stats = ActorStats()
        self._tracker = EpisodeTracker(env.num_envs)
        self._buffer: Optional[dict[str, np.ndarray]] = None
        self._state: tuple[np.ndarray, ...] = ()
        self._state_at_start: tuple[np.ndarray, ...] = ()

    # -- parameters -------------------------------------------------------------------

    def sync_params(self, wait: bool = False, poll_seconds: float = 0.05) -> bool:
        """Pulls newer weights if there are any; with ``wait``, blocks until the first version."""
        while True:
            params = self.variables.fetch(self.param_name, min_version=self.policy.version + 1)
            if params is not None:
                self.policy.load(params.version, params.tensors)
                return True
            if not wait or self.policy.version >= 0:
                return False
            time.sleep(poll_seconds)

    # -- acting -----------------------------------------------------------------------

    def _act(self, ts: BatchedTimeStep, row: int) -> None:
        """Chooses actions for ``ts`` and records the whole step in buffer row ``row``."""
        buf = self._buffer
        assert buf is not None
        t0 = time.perf_counter()
        out, self._state = self.policy.step(ts.observation, ts.step_type == ht.FIRST, self._state)
        self.stats.inference_seconds += time.perf_counter() - t0
        buf[ht.OBSERVATION][row] = ts.observation
        buf[ht.STEP_TYPE][row] = ts.step_type
        buf[ht.REWARD][row] = ts.reward
        buf[ht.DISCOUNT][row] = ts.discount
        buf[ht.ACTION][row] = out.action
        for name, value in out.extras.items():
            buf[name][row] = value
        self._last_action = out.action

    def _start(self) -> None:
        """Resets the environments and fills row 0 of the first unroll."""
        n, length = self.env.num_envs, self.unroll_length + 1
        self._state = self.policy.initial_state(n)
        ts = self.env.reset()
        probe, _ = self.policy.step(ts.observation, ts.step_type == ht.FIRST, self._state)
        self._buffer = {
            ht.OBSERVATION: np.zeros((length, n) + ts.observation.shape[1:], ts.observation.dtype),
            ht.STEP_TYPE: np.zeros((length, n), np.uint8),
            ht.REWARD: np.zeros((length, n), np.float32),
            ht.DISCOUNT: np.zeros((length, n), np.float32),
            ht.ACTION: np.zeros((length, n), np.int64),
        }
        for name, value in probe.extras.items():
            self._buffer[name] = np.zeros((length,) + value.shape, value.dtype)
        self._state_at_start = self._state
        self._act(ts, 0)

    def run_unroll(self) -> int:
        """Steps every environment ``T`` times and writes one item per environment.

        Returns the number of environment steps taken (resets are not counted).
        """
        if self._buffer is None:
            self.sync_params(wait=True)
            self._start()
        elif self.stats.unrolls % self.pull_every == 0:
            self.sync_params()
        buf = self._buffer
        assert buf is not None
        steps_before = self.stats.env_steps
        version = self.policy.version
        for row in range(1, self.unroll_length + 1):
            t0 = time.perf_counter()
            ts = self.env.step(self._last_action)
            self.stats.env_seconds += time.perf_counter() - t0
            self.stats.env_steps += int(np.count_nonzero(ts.step_type != ht.FIRST))
            self._report_episodes(ts)
            if row == self.unroll_length:
                # The state before the last row is where the next unroll starts.
                next_state = self._state
            self._act(ts, row)

        n = self.env.num_envs
        item = dict(buf)  # the writer copies what it keeps; we overwrite buf below
        item[ht.PARAM_VERSION] = np.full((1, n), version, np.int64)
        for i, s in enumerate(self._state_at_start):
            item[f"{ht.CORE_STATE_PREFIX}{i}"] = s[None]  # [1, N, H]
        t0 = time.perf_counter()
        self.writer.insert(item)
        self.stats.write_seconds += time.perf_counter() - t0
        self.stats.unrolls += 1

        # Overlap by one: the last row becomes row 0 of the next unroll.
        for value in buf.values():
            value[0] = value[-1]
        self._state_at_start = next_state
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
