"""Learning smoke tests, bounded by environment steps (not seconds)."""

import json

import pytest

from herd.cli import main

pytestmark = pytest.mark.slow


def _train(run_dir, steps, *extra, agent="impala"):
    args = ["train", "--agent", agent, "--env", "gym:CartPole-v1", "--steps", str(steps), "--seed", "1",
            "--run-dir", str(run_dir), "--quiet"]
    assert main(args + list(extra)) == 0
    return json.loads((run_dir / "summary.json").read_text())


def test_cartpole_learns_within_100k_steps(tmp_path):
    # A uniform random policy averages ~22; the default config reaches ~160 by 100k
    # steps (and 500 by ~350k, see docs/benchmarks/learning.md). 100 leaves room for numeric drift.
    summary = _train(tmp_path / "run", 100_000)
    assert summary["env_steps"] >= 100_000
    assert summary["mean_episode_return_last_100"] >= 100, summary


def test_same_seed_same_run(tmp_path):
    # herd train alternates acting and learning in one thread: a seed fixes the run.
    _train(tmp_path / "a", 8_000)
    _train(tmp_path / "b", 8_000)
    assert (tmp_path / "a" / "episodes.csv").read_text() == (tmp_path / "b" / "episodes.csv").read_text()


def test_resume_continues_from_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    first = _train(run_dir, 10_000)
    second = _train(run_dir, 20_000, "--resume")
    assert second["learner_steps"] > first["learner_steps"]
    assert second["env_steps"] >= 20_000
    # The resumed run counted on from the checkpoint, not from zero.
    assert second["learner_steps"] == pytest.approx(second["env_steps"] / (20 * 8), abs=40)


def test_dqn_learns_cartpole_within_40k_steps(tmp_path):
    # Seed 1 evaluates at 203 after 40k steps (greedy, 10 episodes; 500 by 100k, see
    # docs/benchmarks/learning.md); a uniform random policy averages ~22.
    summary = _train(tmp_path / "run", 40_000, "eval_every=20000", agent="dqn")
    assert summary["env_steps"] >= 40_000 and summary["eval_episodes"] == 10
    assert summary["mean_eval_return"] >= 150, summary
    # The table's own counters: the limiter held the configured samples per insert.
    (table,) = summary["replay_tables"].values()
    assert table["samples_per_insert"] == pytest.approx(table["configured_samples_per_insert"], rel=0.05)
    rounds = (tmp_path / "run" / "eval.csv").read_text().splitlines()
    assert len(rounds) == 1 + 2 * 10  # header, the round at 20k and the final round at 40k


def test_dqn_same_seed_same_run(tmp_path):
    _train(tmp_path / "a", 3_000, "agent.min_replay_size=500", agent="dqn")
    _train(tmp_path / "b", 3_000, "agent.min_replay_size=500", agent="dqn")
    assert (tmp_path / "a" / "episodes.csv").read_text() == (tmp_path / "b" / "episodes.csv").read_text()
    assert (tmp_path / "a" / "eval.csv").read_text() == (tmp_path / "b" / "eval.csv").read_text()
