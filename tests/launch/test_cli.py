"""``herd`` CLI: errors name the bad flag or key; ``herd train`` writes every run-dir output."""

import csv
import json
import subprocess
import sys

import pytest

from herd.cli import main


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "herd.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--steps", "ten"], "--steps"),
        (["train", "agent.entropy_kost=0.1"], "agent.entropy_kost"),
        (["train", "--env", "gym:NoSuchEnv-v0"], "NoSuchEnv"),
        (["train", "--env", "nope:CartPole-v1"], "nope"),
        (["train", "--actors", "0"], "actors"),
        (["train", "agent.torso=transformer"], "allowed values"),
    ],
)
def test_bad_flags_name_the_key(args, fragment):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2


def test_bad_key_message_on_stderr():
    out = run_cli("train", "agent.entropy_kost=0.1")
    assert out.returncode == 2
    assert "agent.entropy_kost" in out.stderr and "entropy_cost" in out.stderr


def test_config_command_prints_resolved_config():
    out = run_cli("config", "--env", "gym:CartPole-v1", "agent.batch_size=8")
    assert out.returncode == 0, out.stderr
    assert "batch_size: 8" in out.stdout and "torso: mlp" in out.stdout


def test_config_command_shows_the_devices_this_machine_resolves():
    import torch
    import yaml

    from herd import devices

    out = run_cli("config", "--env", "gym:CartPole-v1", "actor_device=cuda:99")
    assert out.returncode == 0, out.stderr  # a config for another machine still prints
    lines = out.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("# devices on this machine:")))
    assert lines[header] == f"# devices on this machine: {devices.visible().describe()}"
    learner = "cuda:0" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert lines[header + 1:] == [f"#   learner_device: auto -> {learner}",
                                  "#   actor_device: cuda:99 -> not available here"]
    printed = yaml.safe_load(out.stdout)  # the comments leave a valid config file
    assert printed["learner_device"] == "auto" and printed["actor_device"] == "cuda:99"


def test_a_device_that_is_not_there_stops_train_naming_what_torch_sees():
    out = run_cli("train", "--env", "gym:CartPole-v1", "--steps", "10", "learner_device=cuda:99")
    assert out.returncode == 2
    assert "config key 'learner_device': device 'cuda:99' is not available; torch" in out.stderr
    assert "sees: cpu" in out.stderr and "docs/devices.md" in out.stderr


@pytest.mark.parametrize("kind", ["learner", "actor"])
def test_a_service_on_a_device_that_is_not_there_exits_before_serving(kind):
    out = run_cli("serve", kind, f"{kind}_device=cuda:99", "--redis-url", "redis://127.0.0.1:1/0")
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"config key '{kind}_device': device 'cuda:99' is not available" in out.stderr


def test_train_writes_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    code = main(
        [
            "train", "--env", "gym:CartPole-v1", "--steps", "3000", "--seed", "3", "--actors", "2",
            "--envs-per-actor", "4", "--run-dir", str(run_dir), "--quiet",
            "agent.batch_size=4", "agent.unroll_length=10", "checkpoint_every=5", "learner_device=cpu",
        ]
    )
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in (
        "env_steps", "learner_steps", "episodes", "mean_episode_return_last_100",
        "wall_seconds", "env_steps_per_second",
    ):
        assert key in summary, key
    assert summary["env_steps"] >= 3000
    assert summary["devices"] == {"learner": "cpu", "actors": "cpu"}  # learner_device=cpu below
    # Every round writes 2 actors x 4 envs = 8 unrolls = 2 batches of 4.
    assert summary["learner_steps"] == summary["env_steps"] // (10 * 4) or summary["learner_steps"] > 0
    rows = list(csv.DictReader(open(run_dir / "episodes.csv")))
    assert rows and set(rows[0]) == {"env_steps", "episode_return", "episode_length", "task"}
    assert summary["episodes"] == len(rows)
    assert all(float(r["episode_return"]) == float(r["episode_length"]) for r in rows)  # CartPole: +1 a step
    assert (run_dir / "config.yaml").exists()
    assert (run_dir / "learning_curve.png").stat().st_size > 1000
    assert list((run_dir / "checkpoints").glob("ckpt-*.pt"))
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    # A used run dir is refused unless --resume.
    with pytest.raises(SystemExit):
        main(["train", "--run-dir", str(run_dir), "--steps", "100"])
