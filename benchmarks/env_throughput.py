"""Raw throughput of the batched image environments an actor steps: Atari Pong and MinAtar.

Prints agent steps/s (decisions) and frames/s (agent steps x action repeat) of
``env.step`` with pre-drawn random actions, through Herd's batched-env interface
(``herd/envs/batched.py``), for:

* ``atari:Pong`` (paper setting) on ale-py's threaded C++ vector env, the implementation
  Herd uses (``herd/envs/atari.py``), with 1 and 2 worker threads;
* the candidate it was chosen over: Gymnasium's ``AtariPreprocessing`` (no-ops 30, frame
  skip 4 with max-pool, 84x84 grey) and ``FrameStackObservation(4)`` around
  ``ALE/Pong-v5`` (frameskip 1, no sticky actions), one env per ``dm_env`` adapter, in
  a ``SequentialBatchedEnv`` as any ``gym:`` id without a vector entry point runs;
* ``minatar:breakout`` (one frame per step) in a ``SequentialBatchedEnv``.

Two runs on the 2-core machine with one core busy with another job (load ~2.3), 16 envs:
agent steps/s (frames/s) ale-py vector env 1 thread 2,321 / 2,123 (9,283 / 8,494), 2 threads
2,642 / 2,187; Gymnasium wrappers 1,812 / 1,463 (7,247 / 5,853); minatar:breakout 118,287 /
90,101. At higher load the figures scatter by 3x and mean nothing.

Run from the repo root (needs ``herd[atari,minatar]``); keep it short on a shared machine:

    .venv/bin/python benchmarks/env_throughput.py [--seconds 2] [--num-envs 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from herd.envs.batched import BatchedEnv, SequentialBatchedEnv, make_batched_env  # noqa: E402
from herd.envs.gym_adapter import GymEnv  # noqa: E402
from herd.envs.wrappers import SinglePrecision  # noqa: E402


def gymnasium_pong(num_envs: int, seed: int) -> SequentialBatchedEnv:
    """The Gymnasium-wrapper candidate for ``atari:Pong`` (paper setting), through Herd's interface."""
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    envs = []
    for i in range(num_envs):
        env = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
        env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True)
        envs.append(SinglePrecision(GymEnv(FrameStackObservation(env, 4), seed=seed + i)))
    return SequentialBatchedEnv(envs, task="gymnasium ALE/Pong-v5 + AtariPreprocessing")


def rate(env: BatchedEnv, seconds: float) -> float:
    """Agent steps per second of ``env.step`` (all envs), random actions, after a warm-up."""
    n = env.num_envs
    actions = np.random.default_rng(0).integers(0, env.num_actions, size=(256, n))
    env.reset()
    for a in actions[:16]:
        env.step(a)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions[calls % len(actions)])
        calls += 1
    elapsed = time.perf_counter() - start
    env.close()
    return calls * n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--num-envs", type=int, default=16, help="environments per batched env")
    args = parser.parse_args()
    n = args.num_envs

    rows: list[tuple[str, int, float, int]] = []
    for threads in (1, 2):
        env = make_batched_env("atari:Pong", n, seed=0, num_threads=threads)
        rows.append((f"atari:Pong, ale-py vector env, {threads} thread(s)", n, rate(env, args.seconds), 4))
    rows.append(("atari:Pong, Gymnasium wrappers, sequential", n, rate(gymnasium_pong(n, 0), args.seconds), 4))
    rows.append(("minatar:breakout, sequential", n, rate(make_batched_env("minatar:breakout", n, 0), args.seconds), 1))

    print(f"random actions, {args.seconds:g} s per measurement, {n} envs")
    print(f"{'environment':<48}{'agent steps/s':>15}{'frames/s':>12}")
    for label, _, steps, repeat in rows:
        print(f"{label:<48}{steps:>15,.0f}{steps * repeat:>12,.0f}")


if __name__ == "__main__":
    main()
