"""Frames (env steps x action repeat) next to env steps, in summary.json and the progress line."""

from __future__ import annotations

import io
import json

from herd.telemetry.progress import Progress
from herd.telemetry.run_dir import RunRecorder


def _summary(tmp_path, frames_per_step):
    recorder = RunRecorder(str(tmp_path), {"env": "x"}, tensorboard=False, frames_per_step=frames_per_step)
    recorder.finish({"env_steps": 1234})
    return json.load(open(tmp_path / "summary.json"))


def test_summary_counts_frames_as_env_steps_times_action_repeat(tmp_path):
    summary = _summary(tmp_path, 4)
    assert summary["frames"] == 4936 and summary["frames_per_step"] == 4 and summary["env_steps"] == 1234


def test_summary_frames_equal_env_steps_without_action_repeat(tmp_path):
    assert _summary(tmp_path, 1)["frames"] == 1234


def test_progress_line_shows_frames_only_with_an_action_repeat():
    out = io.StringIO()
    Progress(100_000, stream=out, frames_per_step=4).update(50_000, 10, None, force=True)
    Progress(100_000, stream=out).update(50_000, 10, None, force=True)
    atari, cartpole = out.getvalue().splitlines()
    assert "frames  200.0k" in atari and "env steps   50.0k" in atari
    assert "frames" not in cartpole
