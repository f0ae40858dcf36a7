"""Prints, in one run: the raw CartPole-v1 step rate, and ``herd train``'s env steps/s.

    python benchmarks/train_throughput.py [--steps 200000] [--actors 2] [--envs-per-actor 16]

Numbers, not assertions: docs/benchmarks/throughput.md quotes what this prints on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import gymnasium as gym
import numpy as np


def raw_gym_rate(seconds: float = 2.0) -> float:
    """A bare Gymnasium CartPole loop with random actions: the ceiling of one core."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=100_000)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions[:10_000]:
            _, _, terminated, truncated, _ = env.step(int(a))
            if terminated or truncated:
                env.reset()
        steps += 10_000
    return steps / (time.perf_counter() - start)


def vector_gym_rate(num_envs: int, seconds: float = 2.0) -> float:
    """Gymnasium's numpy-vectorized CartPole, the environment path ``herd train`` uses."""
    from herd.envs.batched import make_batched_env

    env = make_batched_env("gym:CartPole-v1", num_envs, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            env.step(rng.integers(0, 2, size=num_envs))
        steps += 100 * num_envs
    return steps / (time.perf_counter() - start)


def herd_train_rate(steps: int, actors: int, envs_per_actor: int, overrides: list[str]) -> dict:
    from herd import config as hc
    from herd.run_config import load_run_config
    from herd.launch.train import train

    flags = {"env": "gym:CartPole-v1", "steps": steps, "seed": 1, "actors": actors, "envs_per_actor": envs_per_actor}
    config, info = load_run_config(None, flags, hc.parse_overrides(overrides))
    with tempfile.TemporaryDirectory() as run_dir:
        return train(config, info, run_dir, progress=False, tensorboard=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--envs-per-actor", type=int, default=16)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    raw = raw_gym_rate()
    vec = vector_gym_rate(args.actors * args.envs_per_actor)
    summary = herd_train_rate(args.steps, args.actors, args.envs_per_actor, args.overrides)
    result = {
        "raw_gym_cartpole_steps_per_second": round(raw),
        "vectorized_cartpole_steps_per_second": round(vec),
        "herd_train_env_steps_per_second": summary["env_steps_per_second"],
        "herd_train_env_steps": summary["env_steps"],
        "herd_train_learner_steps": summary["learner_steps"],
        "herd_train_timing_seconds": summary.get("timing"),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
