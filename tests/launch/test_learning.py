"""Learning smoke tests, bounded by environment steps (not seconds)."""

import json

import pytest

from herd.cli import main

pytestmark = pytest.mark.slow


def _train(run_dir, steps, *extra):
    args = ["train", "--env", "gym:CartPole-v1", "--steps", str(steps), "--seed", "1", "--run-dir", str(run_dir), "--quiet"]
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
