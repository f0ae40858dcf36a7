"""Prints, in one run on this machine: env steps/s of ``herd up --actors 2`` next to
``herd train`` with the same env and config, and their ratio.

    python benchmarks/cluster_throughput.py [--steps 300000] [--actors 2] [--rounds 3] [key=value ...]

With ``--rounds N`` the two modes alternate N times and the medians are printed
(with every round's numbers and the load average), so a burst of load on a
shared machine skews one round, not the result.

``herd train`` is timed from its first step (its process start-up is not counted);
for ``herd up`` the steady rate is timed from the first env step the cluster
counts (process start-up, ~3 s of imports, is reported separately).

``--baseline DIR`` adds a third mode to every round: ``herd up`` run from another checkout
(e.g. ``git worktree add /tmp/base <old commit>``), with that checkout's code on the path,
so a change's effect on cluster throughput is measured in one run, against the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(mode: str, steps: int, actors: int, overrides: list[str], run_dir: str, code: str = "") -> dict:
    cmd = [
        sys.executable, "-m", "herd.cli", mode, "--env", "gym:CartPole-v1", "--steps", str(steps),
        "--seed", "1", "--actors", str(actors), "--run-dir", run_dir, "--quiet", *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": code} if code else None  # the other checkout's packages win
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=code or None, env=env)
    with open(f"{run_dir}/summary.json") as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the modes this many times; print medians")
    parser.add_argument("--baseline", default="", metavar="DIR",
                        help="also run herd up from this checkout (its code on PYTHONPATH) every round")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    baseline = os.path.abspath(args.baseline) if args.baseline else ""
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            train = run("train", args.steps, args.actors, args.overrides, f"{tmp}/train{i}")
            up = run("up", args.steps, args.actors, args.overrides, f"{tmp}/up{i}")
            rounds.append({"train": train["env_steps_per_second"], "up": up["steady_env_steps_per_second"],
                           "load_average": round(os.getloadavg()[0], 2)})
            if baseline:
                base = run("up", args.steps, args.actors, [], f"{tmp}/base{i}", code=baseline)
                rounds[-1]["baseline_up"] = base["steady_env_steps_per_second"]
                rounds[-1]["baseline_up_mean_return_last_100"] = base["mean_episode_return_last_100"]
    train_rate = statistics.median(r["train"] for r in rounds)
    up_rate = statistics.median(r["up"] for r in rounds)
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
                **({"baseline": baseline,
                    "baseline_herd_up_env_steps_per_second": statistics.median(r["baseline_up"] for r in rounds),
                    "ratio_up_over_baseline_up": round(up_rate / statistics.median(r["baseline_up"] for r in rounds), 3)}
                   if baseline else {}),
                "rounds": rounds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
