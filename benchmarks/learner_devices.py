"""Prints IMPALA learner updates/s and frames/s on every device torch sees, shallow and deep torsos.

    python benchmarks/learner_devices.py [--updates 3] [--warmup 1] [--threads 1] [--batch 32] [--unroll 20]
                                         [--torsos shallow deep] [--devices cpu cuda:0 ...] [--bfloat16]
                                         [--envs 16]

The real ``ImpalaUpdater`` (``agent_preset: atari``, RMSProp) on batches of ``--batch`` unrolls of
``--unroll`` steps of ``[4, 84, 84]`` uint8 frames, as the learner service gets them: read-only
arrays, copied to the device inside ``update``. On a CUDA device the batches are pinned first, as
the service's prefetch thread does it off the learner's path, so the time is the host-to-device
copy plus the update; ``--bfloat16`` adds rows with ``agent.precision=bfloat16`` on devices that
support it. Frames per update are ``batch x unroll``. A second table times one acting step of an
actor's ``ImpalaPolicy`` for ``--envs`` environments on each device (numpy in, numpy out, as in
an actor), which is what ``actor_device`` trades. Numbers, not assertions: docs/devices.md
quotes what this prints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's herd, not another install
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from herd import devices  # noqa: E402
from herd.agents.impala.acting import ImpalaPolicy  # noqa: E402
from herd.agents.impala.config import ImpalaConfig  # noqa: E402
from herd.agents.impala.learning import ImpalaUpdater  # noqa: E402
from herd.agents.torch_util import check_precision, pin_batch  # noqa: E402
from herd.envs.registry import EnvInfo  # noqa: E402
from herd.testing.batches import impala_batch  # noqa: E402

ATARI = EnvInfo((4, 84, 84), "uint8", 6, "ALE/Pong-v5")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(device: torch.device, torso: str, precision: str, args: argparse.Namespace) -> list[float]:
    """Seconds of each timed update (after ``--warmup`` untimed ones)."""
    config = ImpalaConfig.atari(torso=torso, batch_size=args.batch, unroll_length=args.unroll, precision=precision)
    updater = ImpalaUpdater(config, ATARI, total_env_steps=10**9, seed=1, device=device)
    batches = [impala_batch(ATARI, args.unroll, args.batch, seed=i) for i in range(2)]
    if device.type == "cuda":
        batches = [pin_batch(b) for b in batches]  # the learner service pins in its prefetch thread
    for i in range(args.warmup):
        updater.update(batches[i % 2])
    _sync(device)
    seconds = []
    for i in range(args.updates):
        start = time.perf_counter()
        updater.update(batches[i % 2])
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def measure_acting(device: torch.device, torso: str, envs: int, steps: int = 50) -> float:
    """Median seconds of one ``ImpalaPolicy.step`` for ``envs`` environments (after 5 untimed steps)."""
    policy = ImpalaPolicy(ImpalaConfig.atari(torso=torso), ATARI, seed=0, device=device)
    observation = impala_batch(ATARI, 1, envs).data["observation"][0].copy()  # [N, 4, 84, 84] uint8
    first = np.zeros(envs, bool)
    state = policy.initial_state(envs)
    seconds = []
    for i in range(steps + 5):
        start = time.perf_counter()
        policy.step(observation, first, state)  # returns numpy: the device round trip is inside
        if i >= 5:
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3, help="timed updates per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first (allocations, cuDNN autotune)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the run config's torch_threads)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--unroll", type=int, default=20)
    parser.add_argument("--torsos", nargs="+", default=["shallow", "deep"], choices=["shallow", "deep"])
    parser.add_argument("--devices", nargs="+", help="default: every device torch sees")
    parser.add_argument("--bfloat16", action="store_true", help="also agent.precision=bfloat16 where supported")
    parser.add_argument("--envs", type=int, default=16, help="environments per acting step (0: no acting table)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    seen = devices.visible()
    names = args.devices or seen.devices()
    print(f"{seen.describe()}; {args.threads} CPU thread(s); batch {args.batch} x unroll {args.unroll} of "
          f"[4, 84, 84] uint8; {args.warmup} warm-up + {args.updates} timed updates per row (median)")
    print(f"{'device':8} {'name':28} {'torso':8} {'precision':9} {'ms/update':>10} {'updates/s':>10} {'frames/s':>10}")
    frames = args.batch * args.unroll
    for name in names:
        device = devices.resolve(name, "--devices", seen)
        label = devices.device_name(device)
        precisions = ["float32"]
        if args.bfloat16:
            try:
                check_precision("bfloat16", device)
                precisions.append("bfloat16")
            except ValueError as e:
                print(f"{name}: no bfloat16 rows ({e})")
        for torso in args.torsos:
            for precision in precisions:
                seconds = statistics.median(measure(device, torso, precision, args))
                print(f"{str(device):8} {label[:28]:28} {torso:8} {precision:9} {1000 * seconds:>10.1f} "
                      f"{1 / seconds:>10.2f} {frames / seconds:>10.0f}", flush=True)
    if args.envs:
        print(f"\nacting: one ImpalaPolicy.step for {args.envs} environments (median of 50)")
        print(f"{'device':8} {'name':28} {'torso':8} {'ms/step':>10} {'env steps/s':>12}")
        for name in names:
            device = devices.resolve(name, "--devices", seen)
            for torso in args.torsos:
                seconds = measure_acting(device, torso, args.envs)
                print(f"{str(device):8} {devices.device_name(device)[:28]:28} {torso:8} {1000 * seconds:>10.2f} "
                      f"{args.envs / seconds:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
