"""The ``herd`` command line: the composition root of the single-process runner
(and, later, of ``herd serve`` / ``herd up`` / ``herd status``).

Every bad flag or config key ends in ``herd: error: ...`` naming it, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any, Optional, Sequence

from herd import config as hc
from herd import docs_links


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", help=f"environment, e.g. gym:CartPole-v1 (default from config; names: {docs_links.ENVIRONMENTS})")
    p.add_argument("--agent", dest="agent_name",
                   help=f"agent to train: impala (default) or dqn (agents: {docs_links.AGENTS})")
    p.add_argument("--steps", type=int, help="environment steps to train for")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--actors", type=int, help="number of actors")
    p.add_argument("--envs-per-actor", type=int, dest="envs_per_actor", help="environments per actor")
    p.add_argument("--config", metavar="FILE.yaml", help=f"YAML config file (every key: {docs_links.CONFIGURATION})")
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
        prog="herd", description="Herd: distributed deep RL (IMPALA, Ape-X DQN) as gRPC microservices.",
        epilog=docs_links.HELP_EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_parser_with_docs_epilog)
    train = sub.add_parser("train", help="train in one process (actors, replay, learner, params in-process)")
    _add_run_flags(train)
    up = sub.add_parser("up", help="run a local cluster: Redis, params, replay, learner and actors as processes")
    _add_run_flags(up)
    up.add_argument("--redis-url", dest="redis_url", help="use this Redis instead of starting one")
    up.add_argument("--secure", action="store_true",
                    help="mutual TLS and a token on every channel, with a throwaway CA made in <run dir>/secrets")
    up.add_argument("--prometheus", action="store_true",
                    help="also run a Prometheus server (on PATH) that scrapes every service; its URL is printed")
    show = sub.add_parser("config", help="print the resolved config (defaults + file + flags + overrides)")
    _add_run_flags(show)
    _add_serve_parser(sub)
    status = sub.add_parser("status", help="services, health and counters of a running cluster")
    status.add_argument("--run-dir", dest="run_dir", help="run dir of a herd up cluster")
    status.add_argument("--redis-url", dest="redis_url", default=os.environ.get("HERD_REDIS_URL"))
    status.add_argument("--run-id", dest="run_id", default=os.environ.get("HERD_RUN_ID"))
    status.add_argument("--json", action="store_true", help="print JSON")
    _add_security_flags(status, server=False)
    health = sub.add_parser(
        "health", help="exit 0 only if a service's standard gRPC health check says SERVING (container probes)"
    )
    health.add_argument(
        "--address", default=f"127.0.0.1:{_env('port') or DEFAULT_CONTAINER_PORT}",
        help="host:port of the service (default 127.0.0.1:$HERD_PORT, else :%d)" % DEFAULT_CONTAINER_PORT,
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    health.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    return parser


def _parser_with_docs_epilog(**kwargs: Any) -> argparse.ArgumentParser:
    """Subcommand parsers end their --help with the same pointer into docs/."""
    kwargs.setdefault("epilog", docs_links.HELP_EPILOG)
    return argparse.ArgumentParser(**kwargs)


SERVE_KINDS = ("replay", "params", "learner", "actor")
DEFAULT_CONTAINER_PORT = 50051  # the gRPC port of every service in docker-compose and the Helm chart


def _env(name: str, default: Optional[str] = None) -> Optional[str]:
    """Flags of ``herd serve`` default to ``HERD_<FLAG>`` environment variables (containers)."""
    return os.environ.get("HERD_" + name.upper().replace("-", "_"), default)


def _env_flag(name: str) -> bool:
    """A boolean ``HERD_<FLAG>`` environment variable (1, true, yes, on)."""
    return (_env(name, "") or "").strip().lower() in ("1", "true", "yes", "on")


def _add_security_flags(p: argparse.ArgumentParser, *, server: bool = True) -> None:
    """TLS and token flags (herd.options.SecurityOptions); the token itself only from HERD_TOKEN or a file."""
    p.add_argument("--tls-cert", default=_env("tls_cert", ""), help="PEM certificate (server; client under mTLS)")
    p.add_argument("--tls-key", default=_env("tls_key", ""), help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", default=_env("tls_ca", ""), help="PEM CA bundle that verifies servers (and clients)")
    if server:
        p.add_argument("--tls-client-auth", action="store_true", default=_env_flag("tls_client_auth"),
                       help="require client certificates signed by --tls-ca (mutual TLS)")
    p.add_argument("--tls-server-name", default=_env("tls_server_name", ""),
                   help="host name expected in server certificates (default: the dialed host)")
    p.add_argument("--token-file", default=_env("token_file", ""),
                   help="file with the shared token (or set HERD_TOKEN); callers send 'authorization: Bearer <token>'")


def _security(args: argparse.Namespace) -> Any:
    """``SecurityOptions`` from the security flags and HERD_TOKEN."""
    from herd.options import SecurityOptions

    return hc.build(
        SecurityOptions,
        {"tls_cert": args.tls_cert, "tls_key": args.tls_key, "tls_ca": args.tls_ca,
         "tls_client_auth": getattr(args, "tls_client_auth", False), "tls_server_name": args.tls_server_name,
         "token_file": args.token_file, "token": "" if args.token_file else os.environ.get("HERD_TOKEN", "")},
        prefix="security.",
    )


def _add_serve_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run one service (what a container runs); flags default to HERD_<FLAG> environment variables",
    )
    serve.add_argument("kind", choices=SERVE_KINDS, help="which service")
    serve.add_argument("--config", default=_env("config"), metavar="RUN.yaml", help="the run's config file")
    serve.add_argument("--host", default=_env("host", "127.0.0.1"), help="bind address (0.0.0.0 in containers)")
    serve.add_argument("--port", default=_env("port", "0"), help="gRPC port (0 = any free port)")
    serve.add_argument(
        "--advertise-host", default=_env("advertise_host", ""),
        help="host name others dial; 'auto' = this machine's host name (scaled containers)",
    )
    serve.add_argument("--metrics-port", default=_env("metrics_port", "0"),
                       help="port of /metrics (0 = any free port, -1 = none; containers use 9400)")
    serve.add_argument("--max-message-mb", default=_env("max_message_mb", "64"), help="largest gRPC message, MiB")
    serve.add_argument("--redis-url", default=_env("redis_url", ""), help="Redis URL (redis://:password@host:port/db)")
    serve.add_argument("--run-id", default=_env("run_id", "default"), help="run id (Redis namespace)")
    serve.add_argument("--id", default=_env("id", ""), help="service id (default <kind>-<host>-<pid>)")
    serve.add_argument("--replay-address", default=_env("replay_address", ""), help="static replay host:port")
    serve.add_argument("--params-address", default=_env("params_address", ""), help="static params host:port")
    serve.add_argument("--checkpoint-dir", default=_env("checkpoint_dir", ""), help="replay/learner checkpoints")
    serve.add_argument("--data-dir", default=_env("data_dir", ""), help="parameter server persistence")
    serve.add_argument(
        "--actor-index", default=_env("actor_index", "0"),
        help="actor index (seeds its envs); 'auto' claims the next free one from Redis (scaled replicas)",
    )
    serve.add_argument("--log-level", default=_env("log_level", "info"))
    _add_security_flags(serve)
    serve.add_argument("--agent", dest="agent_name", default=_env("agent"),
                       help="agent of the run (default: the config's agent_name)")
    serve.add_argument("overrides", nargs="*", metavar="key=value", help="run config overrides")


def _resolve(args: argparse.Namespace, notes: Optional[list[str]] = None):
    from herd.run_config import load_run_config

    flags = {k: getattr(args, k, None) for k in ("env", "agent_name", "steps", "seed", "actors", "envs_per_actor")}
    overrides = hc.parse_overrides(args.overrides)
    return load_run_config(args.config, flags, overrides, notes=notes)


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
    if args.command == "serve":
        return _serve(parser, args)
    if args.command == "status":
        return _status(parser, args)
    if args.command == "health":
        return _health(args)
    try:
        notes: list[str] = []
        config, info = _resolve(args, notes)
        if args.command == "config":
            import yaml

            yaml.safe_dump(hc.to_dict(config), sys.stdout, sort_keys=False)
            sys.stdout.write(_devices_comment(config))
            sys.stdout.write("".join(f"# {note}\n" for note in notes))  # what the agent's auto fields became, and why
            return 0
        _check_devices(config)  # a device that is not there fails here, before anything starts
        _check_run_dir(args.run_dir, args.resume)
        if getattr(args, "prometheus", False):
            from herd.launch.prometheus import find_prometheus

            find_prometheus()
    except (hc.ConfigError, FileNotFoundError) as e:
        parser.error(str(e))
    if args.command == "train":
        from herd.launch.train import run_from_cli, train

        if args.run_dir:
            summary = train(config, info, args.run_dir, progress=not args.quiet)
        else:
            summary = run_from_cli(config, info, None)
        print(json.dumps(_short(summary)))
        return 0
    if args.command == "up":
        from herd.launch.cluster import up

        run_dir = args.run_dir or _default_run_dir(config, "up")
        summary = up(config, info, run_dir, redis_url=args.redis_url, progress=not args.quiet, resume=args.resume,
                     secure=args.secure, prometheus=args.prometheus)
        print(json.dumps(_short(summary)))
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


def _check_devices(config: Any, kind: Optional[str] = None) -> None:
    """``ConfigError`` unless the learner's (``kind`` None or ``learner``) and the actors' (None or
    ``actor``) devices are on this machine, and the learner's supports the agent's precision."""
    from herd import devices
    from herd.agents.torch_util import check_precision

    if kind in (None, "actor"):
        devices.resolve(config.actor_device, "actor_device")
    if kind in (None, "learner"):
        device = devices.resolve(config.learner_device, "learner_device")
        check_precision(getattr(config.agent, "precision", "float32"), device)  # an agent field, where it has one


def _devices_comment(config: Any) -> str:
    """YAML comments after ``herd config``'s output: each device setting as this machine resolves it
    (comments, so the output stays a valid config file for another machine)."""
    from herd import devices

    seen = devices.visible()
    lines = [f"# devices on this machine: {seen.describe()}"]
    for key in ("learner_device", "actor_device"):
        try:
            resolved = str(devices.resolve(getattr(config, key), key, seen))
        except hc.ConfigError:
            resolved = "not available here"
        lines.append(f"#   {key}: {getattr(config, key)} -> {resolved}")
    return "\n".join(lines) + "\n"


def _default_run_dir(config: Any, mode: str) -> str:
    import time

    safe = config.env.replace(":", "-").replace("/", "-")
    return os.path.join("runs", f"{safe}-{mode}-seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}")


def _service_config(args: argparse.Namespace, run: Any) -> Any:
    """The typed config of the service ``args.kind`` from flags / HERD_* variables."""
    from herd.options import CoordOptions, ServerOptions

    server = hc.build(
        ServerOptions,
        {"host": args.host, "port": args.port,
         "advertise_host": socket.gethostname() if args.advertise_host == "auto" else args.advertise_host,
         "max_message_mb": args.max_message_mb, "metrics_port": args.metrics_port},
        prefix="server.",
    )
    coord = hc.build(
        CoordOptions,
        {"redis_url": args.redis_url, "run_id": args.run_id, "service_id": args.id,
         "replay_address": args.replay_address, "params_address": args.params_address},
        prefix="coord.",
    )
    security = _security(args)
    if args.kind == "replay":
        from replay_service.config import ReplayServiceConfig

        for table in run.replay.tables:
            if table.durability == "wal" and not args.checkpoint_dir:
                raise hc.ConfigError(
                    f"config key 'replay.tables.{table.name}.durability': 'wal' needs --checkpoint-dir "
                    "(the log lives there)", docs_links.config_page(type(run.replay)))
        if run.replay.checkpoint_every_seconds and not args.checkpoint_dir:
            raise hc.ConfigError("config key 'replay.checkpoint_every_seconds': periodic checkpoints need --checkpoint-dir",
                                 docs_links.config_page(type(run.replay)))
        return ReplayServiceConfig(
            server=server, coord=coord, security=security, tables=run.replay.tables,
            checkpoint_dir=args.checkpoint_dir, checkpoint_every_seconds=run.replay.checkpoint_every_seconds,
            seed=run.seed,
        )
    if args.kind == "params":
        from param_server.config import ParamServerConfig

        return ParamServerConfig(server=server, coord=coord, security=security, data_dir=args.data_dir)
    if args.kind == "learner":
        from learner_service.config import LearnerServiceConfig

        return LearnerServiceConfig(
            server=server, coord=coord, security=security, checkpoint_dir=args.checkpoint_dir,
            checkpoint_every=run.checkpoint_every,
        )
    from actor_service.config import ActorServiceConfig

    if args.actor_index == "auto":
        index = _claim_actor_index(coord)
    else:
        index = hc.build(ActorServiceConfig, {"actor_index": args.actor_index}).actor_index
    return ActorServiceConfig(server=server, coord=coord, security=security, actor_index=index)


def _claim_actor_index(coord: Any) -> int:
    """``--actor-index auto``: replicas of one container spec (``docker compose --scale``, a
    Kubernetes Deployment) share their flags, so each claims the next index of its run
    from Redis; without distinct indices every actor would step the same seeds."""
    if not coord.redis_url:
        raise ValueError("--actor-index auto needs --redis-url (indices are claimed from Redis)")
    from herd.coord import Coordinator
    from herd.coord.coordinator import redact

    try:
        with Coordinator(coord.redis_url, coord.run_id) as coordinator:
            return coordinator.incr(actor_indices=1)["actor_indices"] - 1
    except Exception as e:  # noqa: BLE001 - Redis errors: say what failed, not a traceback
        where = redact(coord.redis_url)
        raise ValueError(f"--actor-index auto: cannot claim an index from Redis at {where}: {e}") from e


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from herd.run_config import load_run_config
    from herd.telemetry.logs import setup_json_logging

    try:
        # The replay and parameter servers need no environment: they never build one to read shapes.
        need_env = args.kind in ("actor", "learner")
        flags = {"agent_name": args.agent_name}
        run, info = load_run_config(args.config, flags, hc.parse_overrides(args.overrides), need_env=need_env)
        if args.kind in ("learner", "actor"):
            _check_devices(run, args.kind)  # a device that is not there: exit 2 naming what torch sees
        service = _service_config(args, run)
    except (hc.ConfigError, ValueError) as e:
        parser.error(str(e))
    setup_json_logging(args.kind, args.log_level)
    if args.kind == "replay":
        from replay_service.main import serve as serve_replay

        serve_replay(service)
    elif args.kind == "params":
        from param_server.main import serve as serve_params

        serve_params(service)
    elif args.kind == "learner":
        from learner_service.main import serve as serve_learner

        serve_learner(service, run, info)
    else:
        from actor_service.main import serve as serve_actor

        serve_actor(service, run, info)
    return 0


def _status(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from herd.launch.status import (
        cluster_status, format_table, from_run_dir, prometheus_from_run_dir, run_dir_security,
    )

    redis_pid, prometheus = None, None
    try:
        security = _security(args)
        if args.run_dir:
            redis_url, run_id, redis_pid = from_run_dir(args.run_dir)
            if not security.enabled:
                security = run_dir_security(args.run_dir) or security  # herd up --secure
            prometheus = prometheus_from_run_dir(args.run_dir)
        elif args.redis_url and args.run_id:
            redis_url, run_id = args.redis_url, args.run_id
        else:
            raise ValueError("give --run-dir, or --redis-url and --run-id")
    except ValueError as e:
        parser.error(str(e))
    status = cluster_status(redis_url, run_id, redis_pid, prometheus, security=security)
    print(json.dumps(status, indent=2) if args.json else format_table(status))
    return 0


def _health(args: argparse.Namespace) -> int:
    from herd.wire.health import check_health

    status = check_health(args.address, args.service, timeout=args.timeout)
    if status != "SERVING":
        print(f"herd health: {args.address}: {status}", file=sys.stderr)
        return 1
    return 0


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "env_steps",
        "learner_steps",
        "episodes",
        "mean_episode_return_last_100",
        "mean_eval_return",
        "wall_seconds",
        "env_steps_per_second",
    )
    return {k: summary.get(k) for k in keys}


if __name__ == "__main__":
    sys.exit(main())
