"""Adders: how an actor turns the steps of its ``N`` environments into replay items (Acme's meaning).

Where it sits: the actor loop (``actor_service.loop.Actor``) calls :meth:`Adder.start` on the
first batched step after a reset and :meth:`Adder.add` on every later one, each time with
the action the policy chose there; the adder writes finished items to a ``TrajectoryWriter``
(a replay table or its gRPC client). The agent's spec chooses the adder.

* :class:`SequenceAdder` — sequences of ``length`` steps every ``period`` steps (IMPALA:
  ``length = T + 1``, ``period = T``: consecutive unrolls overlap by one step, because the
  last step only bootstraps and is also the first step, with its action, of the next one).
  Sequences run across episode boundaries; the step types inside say where they are.
* :class:`NStepTransitionAdder` — one item per step and environment: ``(x_t, a_t, R_t, γ_t,
  x_{t+n})`` with ``R_t = Σ_{k<n} (Π_{i<k} γ d_{t+i+1}) r_{t+k+1}`` and the bootstrap discount
  ``γ_t = Π_{k<n} γ d_{t+k+1}`` (DQN, D4PG, SAC). At an episode end the open transitions are
  cut short there: a termination (``d = 0``) gives ``γ_t = 0``, a truncation (``d = 1``) keeps
  ``γ^k`` and bootstraps from the last observation. Priorities can be computed at insert.

Step semantics are ``herd/types.py``'s (``dm_env``'s): entry ``t`` holds ``x_t`` with the
reward and discount received on arriving at it.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import numpy as np

from herd import types as ht
from herd.agents.base import PolicyOutput
from herd.envs.batched import BatchedTimeStep
from herd.interfaces import TrajectoryWriter


class Adder(Protocol):
    """Turns batched steps into replay items."""

    steps_per_write: int  # the actor steps this many times per call of its loop

    def start(self, ts: BatchedTimeStep, out: PolicyOutput, state: tuple[np.ndarray, ...], version: int) -> None:
        """The first step of all ``N`` environments (all ``FIRST``) and the actions taken there."""

    def add(self, ts: BatchedTimeStep, out: PolicyOutput, state: tuple[np.ndarray, ...], version: int) -> None:
        """A later step; ``state`` is the recurrent state the policy acted from at ``ts``."""


class SequenceAdder:
    """Writes ``[length, N, ...]`` sequences every ``period`` steps (the last ``length - period``
    steps of a sequence start the next one), with the recurrent state and the parameter
    version at their first step."""

    def __init__(self, writer: TrajectoryWriter, length: int, period: int) -> None:
        if not 1 <= period < length:
            raise ValueError(f"a sequence adder needs 1 <= period < length, got period {period}, length {length}")
        self.writer = writer
        self.length = length
        self.period = period
        self.steps_per_write = period
        self._buffer: Optional[dict[str, np.ndarray]] = None
        self._row = 0
        self._state_at_start: tuple[np.ndarray, ...] = ()
        self._next_state: tuple[np.ndarray, ...] = ()
        self._version = -1
        self.items_written = 0

    def start(self, ts: BatchedTimeStep, out: PolicyOutput, state: tuple[np.ndarray, ...], version: int) -> None:
        n, length = len(ts.step_type), self.length
        self._buffer = {
            ht.OBSERVATION: np.zeros((length, n) + ts.observation.shape[1:], ts.observation.dtype),
            ht.STEP_TYPE: np.zeros((length, n), np.uint8),
            ht.REWARD: np.zeros((length, n), np.float32),
            ht.DISCOUNT: np.zeros((length, n), np.float32),
            ht.ACTION: np.zeros((length,) + out.action.shape, out.action.dtype),
        }
        for name, value in out.extras.items():
            self._buffer[name] = np.zeros((length,) + value.shape, value.dtype)
        self._row = 0
        self._state_at_start = state
        self._version = version
        self._record(ts, out)

    def add(self, ts: BatchedTimeStep, out: PolicyOutput, state: tuple[np.ndarray, ...], version: int) -> None:
        if self._buffer is None:
            raise RuntimeError("SequenceAdder.add before start")
        self._row += 1
        if self._row == 1:
            self._version = version  # the weights that act on the rest of this sequence
        if self._row == self.period:
            self._next_state = state  # where the next sequence starts
        self._record(ts, out)
        if self._row == self.length - 1:
            self._write()

    def _record(self, ts: BatchedTimeStep, out: PolicyOutput) -> None:
        buf, row = self._buffer, self._row
        assert buf is not None
        buf[ht.OBSERVATION][row] = ts.observation
        buf[ht.STEP_TYPE][row] = ts.step_type
        buf[ht.REWARD][row] = ts.reward
        buf[ht.DISCOUNT][row] = ts.discount
        buf[ht.ACTION][row] = out.action
        for name, value in out.extras.items():
            buf[name][row] = value

    def _write(self) -> None:
        buf = self._buffer
        assert buf is not None
        n = len(buf[ht.STEP_TYPE][0])
        item = dict(buf)  # the writer copies what it keeps; the buffer is overwritten below
        item[ht.PARAM_VERSION] = np.full((1, n), self._version, np.int64)
        for i, s in enumerate(self._state_at_start):
            item[f"{ht.CORE_STATE_PREFIX}{i}"] = s[None]  # [1, N, H]
        self.writer.insert(item)
        self.items_written += n
        keep = self.length - self.period
        for value in buf.values():
            value[:keep] = value[self.period:]
        self._row = keep - 1
        self._state_at_start = self._next_state


PriorityFn = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]], np.ndarray]
"""``(extras at x_t, a_t, R_t, γ_t, extras at x_{t+n}) -> priorities``, each ``[K, ...]``."""


class NStepTransitionAdder:
    """Writes n-step transitions: ``observation [2, K, ...]`` (``x_t``, ``x_{t+n}``), ``action``,
    ``reward`` (``R_t``), ``discount`` (``γ_t``) and ``param_version``, each ``[1, K, ...]``.

    Transitions of ``steps_per_write`` steps of all environments go out as one insert,
    with priorities from ``priority_fn`` when it is given (Ape-X: the actor's own TD errors).
    """

    def __init__(
        self,
        writer: TrajectoryWriter,
        n: int,
        discount: float,
        *,
        steps_per_write: int = 1,
        priority_fn: Optional[PriorityFn] = None,
        reward_clip: Optional[float] = None,
    ) -> None:
        if n < 1 or steps_per_write < 1:
            raise ValueError(f"n and steps_per_write must be >= 1, got {n}, {steps_per_write}")
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {discount}")
        self.writer = writer
        self.n = n
        self.discount = float(discount)
        self.steps_per_write = steps_per_write
        self.priority_fn = priority_fn
        self.reward_clip = reward_clip  # rewards clipped to [-x, x] before they enter R_t (Atari)
        self._pending: list[list[dict]] = []  # per env: open transitions, oldest first
        self._done: list[tuple] = []  # finished, not yet written
        self._steps = 0
        self.items_written = 0

    def start(self, ts: BatchedTimeStep, out: PolicyOutput, state: tuple[np.ndarray, ...], version: int) -> None:
        self._pending = [[] for _ in range(len(ts.step_type))]
        self._open(ts, out)

    def add(self, ts: BatchedTimeStep, out: PolicyOutput, state: tuple[np.ndarray, ...], version: int) -> None:
        for i, st in enumerate(ts.step_type):
            if st == ht.FIRST:
                self._pending[i].clear()  # a reset: nothing crosses it
                continue
            r, d = float(ts.reward[i]), float(ts.discount[i])
            if self.reward_clip is not None:
                r = min(max(r, -self.reward_clip), self.reward_clip)
            still_open = []
            for p in self._pending[i]:
                p["return"] += p["scale"] * r
                p["scale"] *= self.discount * d
                p["count"] += 1
                if p["count"] == self.n or st == ht.LAST:
                    self._finish(p, ts, out, i, version)
                else:
                    still_open.append(p)
            self._pending[i] = still_open
        self._open(ts, out)
        self._steps += 1
        if self._steps % self.steps_per_write == 0:
            self.flush()

    def _open(self, ts: BatchedTimeStep, out: PolicyOutput) -> None:
        """Starts a transition at every environment not at ``LAST`` (its action is real)."""
        for i, st in enumerate(ts.step_type):
            if st != ht.LAST:
                self._pending[i].append({
                    "observation": ts.observation[i].copy(),
                    "action": np.array(out.action[i]),
                    "extras": {k: np.array(v[i]) for k, v in out.extras.items()},
                    "return": 0.0, "scale": 1.0, "count": 0,
                })

    def _finish(self, p: dict, ts: BatchedTimeStep, out: PolicyOutput, i: int, version: int) -> None:
        end_extras = {k: np.array(v[i]) for k, v in out.extras.items()}
        self._done.append((p, ts.observation[i].copy(), end_extras, version))

    def flush(self) -> None:
        """Writes the finished transitions (nothing when there are none)."""
        if not self._done:
            return
        done, self._done = self._done, []
        k = len(done)
        start = np.stack([p["observation"] for p, _, _, _ in done])
        end = np.stack([o for _, o, _, _ in done])
        action = np.stack([p["action"] for p, _, _, _ in done])
        reward = np.array([p["return"] for p, _, _, _ in done], np.float32)
        discount = np.array([p["scale"] for p, _, _, _ in done], np.float32)
        item = {
            ht.OBSERVATION: np.stack([start, end]),  # [2, K, ...]
            ht.ACTION: action[None],  # [1, K, ...]
            ht.REWARD: reward[None],
            ht.DISCOUNT: discount[None],
            ht.PARAM_VERSION: np.array([[v for _, _, _, v in done]], np.int64),
        }
        priorities = None
        if self.priority_fn is not None:
            first = {name: np.stack([p["extras"][name] for p, _, _, _ in done]) for name in done[0][0]["extras"]}
            last = {name: np.stack([e[name] for _, _, e, _ in done]) for name in done[0][2]}
            priorities = np.asarray(self.priority_fn(first, action, reward, discount, last), np.float64)
        self.writer.insert(item, priorities)
        self.items_written += k
