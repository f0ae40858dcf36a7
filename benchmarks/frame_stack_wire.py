"""What four stacked frames per step cost on the replay path, against sending each frame once.

IMPALA on Atari (paper setting) writes trajectories of T + 1 = 21 steps whose observation is
the stack of the last 4 frames, uint8 ``[4, 84, 84]``: each frame crosses the wire four times.
The alternative is to send each step's newest frame only (``T + 4`` frames per trajectory, the
first three to fill the stack) and rebuild the stacks on the learner. This prints, in ONE run,
for both layouts, the CPU that inserting and sampling take (client process + replay server
process, from ``/proc``; robust to other load, unlike items/s) per agent step, next to the
per-step budget of the issue's target (1,000 agent steps/s on this 2-core machine: 2,000 CPU-us
per agent step for everything: environments, inference, wire and learner).

    python benchmarks/frame_stack_wire.py [--requests 200] [--envs 16] [--batch 32]

Each request inserts one trajectory per env (``--envs`` items, as an actor with that many envs
does every T steps); the learner side samples ``--batch`` items per call through ``SampleStream``.
The replay server runs in its own process, as in a deployment.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prometheus_client.process_collector import ProcessCollector  # noqa: E402

from benchmarks.replay_grpc import _replay_server, start  # noqa: E402

T = 20  # unroll length of the paper setting
FRAME = (84, 84)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (all its threads), as Prometheus' process collector reads it."""
    collector = ProcessCollector(pid=lambda: pid, registry=None)
    return next(m.samples[0].value for m in collector.collect() if m.name == "process_cpu_seconds")


def trajectories(layout: str, envs: int) -> dict[str, np.ndarray]:
    """One request's items (time-major, ``[steps, envs, ...]``) in ``layout`` ``stacked`` or ``frames``."""
    rng = np.random.default_rng(0)
    shape = (T + 4, envs, 1, *FRAME) if layout == "frames" else (T + 1, envs, 4, *FRAME)
    return {
        "observation": rng.integers(0, 256, shape, dtype=np.uint8),
        "action": rng.integers(0, 6, (T + 1, envs), dtype=np.int64),
        "reward": rng.random((T + 1, envs), dtype=np.float32),
        "discount": np.ones((T + 1, envs), np.float32),
        "step_type": np.ones((T + 1, envs), np.int8),
        "behaviour_logits": rng.random((T + 1, envs, 6), dtype=np.float32),
        "param_version": np.zeros((T + 1, envs), np.int64),
    }


def measure(layout: str, requests: int, envs: int, batch: int) -> dict[str, float]:
    from replay_service.client import ReplayClient, SampleStream

    items = trajectories(layout, envs)
    item_bytes = sum(a[:, 0].nbytes for a in items.values())
    proc, stop, port = start(_replay_server, max(4 * batch, 2 * envs))
    client = ReplayClient(f"127.0.0.1:{port}")
    table = client.table("uniform")
    for _ in range(4):  # warm up the stream and fill the table past one batch
        table.insert_async(items).result()

    server0, client0, wall0 = process_cpu_seconds(proc.pid), time.process_time(), time.monotonic()
    pending = [table.insert_async(items) for _ in range(requests)]
    for f in pending:
        f.result()
    server1, client1, wall1 = process_cpu_seconds(proc.pid), time.process_time(), time.monotonic()

    samples = requests * envs // batch  # each inserted item sampled about once, as IMPALA's queue does
    stream = SampleStream(table, batch, prefetch=2)
    stream.next(timeout=60)
    server2, client2 = process_cpu_seconds(proc.pid), time.process_time()
    for _ in range(samples):
        stream.next(timeout=60)
    server3, client3 = process_cpu_seconds(proc.pid), time.process_time()
    stream.close()
    client.close()
    stop.set()
    proc.join(timeout=30)

    agent_steps = requests * envs * T  # each item carries T new agent steps
    return {
        "item_kib": item_bytes / 1024,
        "insert_us": 1e6 * ((server1 - server0) + (client1 - client0)) / agent_steps,
        "sample_us": 1e6 * ((server3 - server2) + (client3 - client2)) / (samples * batch * T),
        "insert_mb_s": requests * envs * item_bytes / 2**20 / (wall1 - wall0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="insert requests per layout")
    parser.add_argument("--envs", type=int, default=16, help="items (one per env) per insert request")
    parser.add_argument("--batch", type=int, default=32, help="items per learner batch")
    parser.add_argument("--budget-us", type=float, default=2000.0,
                        help="CPU-us per agent step the whole system may spend (2 cores / 1,000 steps/s)")
    args = parser.parse_args()
    print(f"IMPALA trajectories of {T} + 1 steps, {args.envs} per request, {args.requests} requests, "
          f"batches of {args.batch}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'layout':<26} {'KiB/item':>9} {'insert us/step':>15} {'sample us/step':>15} "
          f"{'wire % of budget':>17} {'insert MB/s':>12}")
    rows = {}
    for layout, label in (("stacked", "4 stacked frames per step"), ("frames", "newest frame per step")):
        r = rows[layout] = measure(layout, args.requests, args.envs, args.batch)
        share = (r["insert_us"] + r["sample_us"]) / args.budget_us
        print(f"{label:<26} {r['item_kib']:>9.0f} {r['insert_us']:>15.1f} {r['sample_us']:>15.1f} "
              f"{share:>16.1%} {r['insert_mb_s']:>12.0f}", flush=True)
    saved = sum(rows["stacked"][k] - rows["frames"][k] for k in ("insert_us", "sample_us"))
    print(f"sending each frame once would save {saved:.1f} CPU-us per agent step "
          f"({saved / args.budget_us:.1%} of the budget at {2e6 / args.budget_us:,.0f} agent steps/s on 2 cores)")


if __name__ == "__main__":
    main()
