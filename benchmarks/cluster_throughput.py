"""Prints, in one run on this machine: env steps/s of ``herd up --actors 2`` next to
``herd train`` with the same env and config, and their ratio.

    python benchmarks/cluster_throughput.py [--steps 300000] [--actors 2] [key=value ...]

``herd train`` is timed from its first step (its process start-up is not counted);
for ``herd up`` the steady rate is timed from the first env step the cluster
counts (process start-up, ~3 s of imports, is reported separately).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile


def run(mode: str, steps: int, actors: int, overrides: list[str], run_dir: str) -> dict:
    cmd = [
        sys.executable, "-m", "herd.cli", mode, "--env", "gym:CartPole-v1", "--steps", str(steps),
        "--seed", "1", "--actors", str(actors), "--run-dir", run_dir, "--quiet", *overrides,
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(f"{run_dir}/summary.json") as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = run("train", args.steps, args.actors, args.overrides, f"{tmp}/train")
        up = run("up", args.steps, args.actors, args.overrides, f"{tmp}/up")
    train_rate = train["env_steps_per_second"]
    up_rate = up["steady_env_steps_per_second"]
    print(
        json.dumps(
            {
                "env": "gym:CartPole-v1",
                "steps": args.steps,
                "actors": args.actors,
                "herd_train_env_steps_per_second": train_rate,
                "herd_up_env_steps_per_second": up_rate,
                "herd_up_env_steps_per_second_including_startup": up["env_steps_per_second"],
                "herd_up_startup_seconds": up["startup_seconds"],
                "ratio_up_over_train": round(up_rate / train_rate, 3) if up_rate else None,
                "herd_train_learner_steps": train["learner_steps"],
                "herd_up_learner_steps": up["learner_steps"],
                "herd_train_mean_return_last_100": train["mean_episode_return_last_100"],
                "herd_up_mean_return_last_100": up["mean_episode_return_last_100"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
