"""Parameter server over loopback: publish / fetch of a large model, with and without persistence.

    python benchmarks/param_server_bench.py [--mib 40] [--repeats 5] [--data-dir DIR]

Prints medians: publish (learner -> server, including the fsync'ed write when persisting),
the write alone, fetch (server -> actor), an up-to-date fetch (the empty answer), and
4 concurrent fetchers of the same version (served from the one cached encoding).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import numpy as np

from herd.wire.server import start_server
from param_server.client import ParamClient
from param_server.servicer import SERVICE_NAME, ParameterServicer, add_to_server


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(mib: int, repeats: int, data_dir: str) -> None:
    servicer = ParameterServicer(data_dir=data_dir)
    running = start_server(lambda s: add_to_server(servicer, s), [SERVICE_NAME])
    tensors = {f"layer{i}": np.random.default_rng(i).standard_normal((mib // 5) * 262_144, dtype=np.float32)
               for i in range(5)}
    total = sum(t.nbytes for t in tensors.values()) / 2**20
    client = ParamClient(f"127.0.0.1:{running.port}", timeout=60)
    version = iter(range(10**9))
    persist: list[float] = []

    def publish() -> None:
        client.publish("policy", next(version), tensors)
        persist.append(servicer.last_persist_seconds)

    t_pub = _median(publish, repeats)
    t_fetch = _median(lambda: client.fetch("policy"), repeats)
    t_noop = _median(lambda: client.fetch("policy", min_version=10**9), 50)

    def four_fetchers() -> None:
        threads = [threading.Thread(target=client.fetch, args=("policy",)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    t_four = _median(four_fetchers, repeats)
    label = f"persist to {data_dir}" if data_dir else "no persistence"
    print(f"{total:.0f} MiB, {label}:")
    print(f"  publish   {t_pub * 1e3:8.1f} ms  ({total / t_pub:6.0f} MiB/s)")
    if data_dir:
        print(f"  of which write+fsync {statistics.median(persist) * 1e3:6.1f} ms ({total / statistics.median(persist):6.0f} MiB/s)")
    print(f"  fetch     {t_fetch * 1e3:8.1f} ms  ({total / t_fetch:6.0f} MiB/s)")
    print(f"  4 concurrent fetches {t_four * 1e3:8.1f} ms  ({4 * total / t_four:6.0f} MiB/s total)")
    print(f"  up-to-date fetch {t_noop * 1e3:6.2f} ms")
    client.close()
    running.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", default="", help="persist here (default: a temporary directory)")
    args = parser.parse_args()
    run(args.mib, args.repeats, "")
    with tempfile.TemporaryDirectory() as tmp:
        run(args.mib, args.repeats, args.data_dir or tmp)


if __name__ == "__main__":
    main()
