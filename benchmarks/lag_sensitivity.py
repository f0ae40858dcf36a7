"""How a config learns under policy lag, without a cluster: prints the final return.

    python benchmarks/lag_sensitivity.py --lag-batches 4 --seed 1 [key=value ...]

Steps the same Actor / Table / Learner classes as ``herd train`` in one thread,
but lets the learner consume a batch only while ``--lag-batches`` more batches
wait behind it, so every update uses data that many versions old (a cluster's
queue, in-flight unrolls and prefetch do the same). Deterministic for a seed;
use it to tune configs for ``herd up`` at ~13 s per 500k-step run.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from actor_service.loop import Actor, env_seed
from herd import config as hc
from herd.adders import SequenceAdder
from herd.agents.impala.acting import ImpalaPolicy
from herd.agents.impala.learning import ImpalaUpdater
from herd.envs.batched import make_batched_env
from herd.run_config import load_run_config
from learner_service.learner import Learner
from param_server.store import ParameterStore
from replay_service.config import TableConfig, make_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lag-batches", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--trace-every", type=int, default=0, help="print diagnostics every N learner steps")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg, info = load_run_config(None, {"steps": args.steps, "seed": args.seed}, hc.parse_overrides(args.overrides))
    torch.set_num_threads(cfg.torch_threads)
    agent = cfg.agent
    table = make_table(TableConfig.queue("t", agent.batch_size * (args.lag_batches + 2) + cfg.actors * cfg.envs_per_actor))
    store = ParameterStore()
    learner = Learner(ImpalaUpdater(agent, info, cfg.steps, cfg.seed), table, store, agent.batch_size, sample_timeout=0)
    learner.publish()
    returns: list[float] = []
    lags: list[float] = []
    actors = []
    for i in range(cfg.actors):
        seed = env_seed(cfg.seed, i, cfg.envs_per_actor)
        env = make_batched_env(cfg.env, cfg.envs_per_actor, seed, vectorized=cfg.vectorized_env)
        actors.append(Actor(env, ImpalaPolicy(agent, info, seed),
                            SequenceAdder(table, agent.unroll_length + 1, agent.unroll_length), store,
                            on_episode=lambda r: returns.append(r.episode_return)))
    steps = 0
    while steps < cfg.steps:
        for actor in actors:
            steps += actor.run_unroll()
        while table.info().size >= agent.batch_size * (1 + args.lag_batches):
            m = learner.step()
            lags.append(m["policy_lag"])
            if args.trace_every and learner.stats.steps % args.trace_every == 0:
                print(json.dumps({"step": learner.stats.steps, "env_steps": steps,
                                  "return": round(float(np.mean(returns[-100:] or [0])), 1),
                                  **{k: round(m[k], 3) for k in ("policy_lag", "mean_entropy", "mean_rho",
                                                                  "mean_clipped_fraction", "grad_norm",
                                                                  "mean_value", "mean_pg_advantage") if k in m}}))
    print(json.dumps({
        "lag_batches": args.lag_batches, "seed": args.seed, "overrides": args.overrides, "env_steps": steps,
        "mean_policy_lag": round(float(np.mean(lags)), 2),
        "mean_episode_return_last_100": round(float(np.mean(returns[-100:])), 2),
    }))


if __name__ == "__main__":
    main()
