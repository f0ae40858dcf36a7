"""Prints the samples-per-insert ratio that ``herd up --agent dqn`` achieves with 1, 2 and 4 actors.

    python benchmarks/replay_ratio.py [--steps 60000] [--actors 1 2 4] [--seed 1] [key=value ...]

The ratio comes from the replay service's own counters (its ``Info`` RPC, read by ``herd up``
into ``summary.json`` before the replay stops): samples / (inserts - min_size_to_sample), next
to the configured ``agent.samples_per_insert``. The ``SampleToInsertRatio`` limiter should hold
it whatever the number of actors; the last column is the deviation (target: within 10%).
Numbers, not assertions: docs/benchmarks/learning.md quotes what this prints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def run(actors: int, steps: int, seed: int, overrides: list[str], root: str) -> dict:
    run_dir = os.path.join(root, f"actors{actors}")
    cmd = [sys.executable, "-m", "herd.cli", "up", "--agent", "dqn", "--env", "gym:CartPole-v1",
           "--actors", str(actors), "--steps", str(steps), "--seed", str(seed), "--quiet", "--run-dir", run_dir,
           "eval_every=0", *overrides]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    print(f"herd up --agent dqn --env gym:CartPole-v1 --steps {args.steps} --seed {args.seed} {' '.join(args.overrides)}")
    print(f"{'actors':>6} {'env steps':>10} {'inserts':>9} {'samples':>10} {'configured':>10} {'achieved':>9} "
          f"{'deviation':>9} {'env steps/s':>11}")
    with tempfile.TemporaryDirectory() as root:
        for n in args.actors:
            summary = run(n, args.steps, args.seed, args.overrides, root)
            (table,) = summary["replay_tables"].values()
            want, got = table["configured_samples_per_insert"], table["samples_per_insert"]
            print(f"{n:>6} {summary['env_steps']:>10} {table['inserts']:>9} {table['samples']:>10} {want:>10.2f} "
                  f"{got:>9.2f} {100 * (got - want) / want:>8.1f}% {summary['env_steps_per_second']:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
