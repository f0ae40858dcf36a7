"""Environment step rates on CartPole-v1: raw Gymnasium vs. the actor's batched environments.

Prints env steps per second (one env step = one environment advancing once) for a raw
single ``gymnasium`` env, :class:`SequentialBatchedEnv` and :class:`GymVectorBatchedEnv`,
with uniformly random actions. Run from the repo root:

    .venv/bin/python benchmarks/env_step_rate.py [--seconds 2] [--num-envs 1 16 64 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from herd.envs.batched import BatchedEnv, make_batched_env  # noqa: E402

ENV = "CartPole-v1"


def raw_gym_rate(seconds: float) -> float:
    """Single Gymnasium env, reset on termination or truncation."""
    env = gym.make(ENV)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=4096).tolist()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        steps += len(actions)
    return steps / (time.perf_counter() - start)


def batched_rate(env: BatchedEnv, seconds: float) -> float:
    """Env steps per second of ``env.step`` with pre-drawn random actions."""
    n = env.num_envs
    actions = np.random.default_rng(0).integers(0, 2, size=(max(1, 4096 // n), n))
    env.reset()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions:
            env.step(a)
        calls += len(actions)
    elapsed = time.perf_counter() - start
    env.close()
    return calls * n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 16, 64, 256])
    args = parser.parse_args()

    print(f"{ENV}, random actions, {args.seconds:g} s per measurement")
    print(f"{'implementation':<24}{'N':>6}{'env steps/s':>14}")
    print(f"{'raw gymnasium':<24}{1:>6}{raw_gym_rate(args.seconds):>14,.0f}")
    for vectorized, label in ((False, "SequentialBatchedEnv"), (True, "GymVectorBatchedEnv")):
        for n in args.num_envs:
            env = make_batched_env(f"gym:{ENV}", n, seed=0, vectorized=vectorized)
            print(f"{label:<24}{n:>6}{batched_rate(env, args.seconds):>14,.0f}", flush=True)


if __name__ == "__main__":
    main()
