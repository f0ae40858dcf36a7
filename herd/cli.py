"""The ``herd`` command line: the composition root of the single-process runner
(and, later, of ``herd serve`` / ``herd up`` / ``herd status``).

Every bad flag or config key ends in ``herd: error: ...`` naming it, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional, Sequence

from herd import config as hc


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", help="environment, e.g. gym:CartPole-v1 (default from config)")
    p.add_argument("--steps", type=int, help="environment steps to train for")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--actors", type=int, help="number of actors")
    p.add_argument("--envs-per-actor", type=int, dest="envs_per_actor", help="environments per actor")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML config file (see README)")
    p.add_argument("--run-dir", dest="run_dir", help="output directory (default runs/<env>-seed<seed>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no live progress display")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. agent.learning_rate=1e-3 agent.batch_size=16",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herd", description="Herd: distributed IMPALA (V-trace) as gRPC microservices."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser("train", help="train in one process (actors, replay, learner, params in-process)")
    _add_run_flags(train)
    show = sub.add_parser("config", help="print the resolved config (defaults + file + flags + overrides)")
    _add_run_flags(show)
    return parser


def _resolve(args: argparse.Namespace):
    from herd.launch.run_config import load_run_config

    flags = {
        "env": args.env,
        "steps": args.steps,
        "seed": args.seed,
        "actors": args.actors,
        "envs_per_actor": args.envs_per_actor,
    }
    overrides = hc.parse_overrides(args.overrides)
    return load_run_config(args.config, flags, overrides)


def _check_run_dir(run_dir: Optional[str], resume: bool) -> None:
    if not run_dir:
        if resume:
            raise hc.ConfigError("--resume needs --run-dir")
        return
    used = os.path.exists(os.path.join(run_dir, "config.yaml"))
    if used and not resume:
        raise hc.ConfigError(
            f"--run-dir {run_dir} already holds a run; pass --resume to continue it or choose another directory"
        )
    if resume and not used:
        raise hc.ConfigError(f"--resume: {run_dir} holds no run to continue")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, info = _resolve(args)
        if args.command == "config":
            import yaml

            yaml.safe_dump(hc.to_dict(config), sys.stdout, sort_keys=False)
            return 0
        _check_run_dir(args.run_dir, args.resume)
    except hc.ConfigError as e:
        parser.error(str(e))
    if args.command == "train":
        from herd.launch.train import run_from_cli, train

        if args.run_dir:
            summary = train(config, info, args.run_dir, progress=not args.quiet)
        else:
            summary = run_from_cli(config, info, None)
        print(json.dumps(_short(summary)))
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "env_steps",
        "learner_steps",
        "episodes",
        "mean_episode_return_last_100",
        "wall_seconds",
        "env_steps_per_second",
    )
    return {k: summary.get(k) for k in keys}


if __name__ == "__main__":
    sys.exit(main())
