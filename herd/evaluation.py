"""Evaluation rounds: the agent's evaluation policy in environments of its own.

Where it sits: ``herd train`` and ``herd up`` (the composition root) own one ``Evaluator``.
Every ``eval_every`` env steps, and once more when training ends, it pulls the latest
weights from a ``VariableSource`` (the parameter store, or the parameter server's client),
plays ``episodes`` episodes at once — one per environment, seeded apart from every training
environment — and returns their records. The run dir keeps them in ``eval.csv``, and
``summary.json`` reports the last round's mean as ``mean_eval_return``. Training returns of
exploring actors say little about the policy itself; these do.
"""

from __future__ import annotations

from herd import types as ht
from herd.agents.base import Policy, load_newer
from herd.envs.batched import EpisodeTracker, make_batched_env
from herd.interfaces import VariableSource

EVAL_SEED_OFFSET = 7_777_777  # evaluation envs draw from seeds no training env of the run uses


class Evaluator:
    """Plays whole episodes with ``policy`` on ``episodes`` environments of ``env_name``."""

    def __init__(
        self,
        env_name: str,
        policy: Policy,
        variables: VariableSource,
        episodes: int,
        seed: int,
        *,
        param_name: str = "policy",
        vectorized: bool | None = None,
        max_steps: int = 1_000_000,
    ) -> None:
        self.policy = policy
        self.variables = variables
        self.episodes = episodes
        self.param_name = param_name
        self.task = env_name
        self.max_steps = max_steps
        self.rounds = 0
        self._seed = seed * 1_000_003 + EVAL_SEED_OFFSET
        self._vectorized = vectorized

    def run(self, env_steps: int) -> list[ht.EpisodeRecord]:
        """One round with the newest weights: the first episode of every environment.

        ``env_steps`` (the run's count when the round starts) stamps the records.
        """
        load_newer(self.policy, self.variables, self.param_name)
        n = self.episodes
        # Fresh environments with the same seeds every round: rounds differ only by the weights.
        env = make_batched_env(self.task, n, self._seed, vectorized=self._vectorized)
        try:
            return self._play(env, env_steps)
        finally:
            env.close()

    def _play(self, env, env_steps: int) -> list[ht.EpisodeRecord]:
        n = self.episodes
        ts = env.reset()
        state = self.policy.initial_state(n)
        tracker = EpisodeTracker(n)  # whole games where an env ends learning episodes at life losses
        first: dict[int, tuple[float, int]] = {}  # env -> (return, length) of its first episode
        for _ in range(self.max_steps):
            out, state = self.policy.step(ts.observation, ts.step_type == ht.FIRST, state)
            ts = env.step(out.action)
            for i, episode_return, length in tracker.update(ts):
                first.setdefault(i, (episode_return, length))
            if len(first) == n:
                break
        self.rounds += 1
        return [ht.EpisodeRecord(env_steps, float(r), int(length), self.task, actor_id="eval")
                for _, (r, length) in sorted(first.items())]

    def close(self) -> None:
        """Nothing to release: every round makes and closes its own environments."""


def eval_due(env_steps: int, eval_every: int, rounds_done: int) -> bool:
    """Whether an evaluation round is due: one every ``eval_every`` env steps (0: never during training)."""
    return eval_every > 0 and env_steps >= (rounds_done + 1) * eval_every
