"""Comparing a container's ``herd serve`` invocation with what ``herd up`` runs, for the
docker-compose and Helm tests.

A container is described by its command (the arguments after the ``herd``
entrypoint) and its ``HERD_*`` environment; ``herd up`` by a ``ServiceSpec`` argv and
the ``ServicePlan`` it came from. Both are parsed by the real ``herd serve`` parser,
then what legitimately differs between a process on this machine and a container is
replaced by a marker — listening address and ports, Redis URL and run id, static
peer addresses (discovery in herd up), where the run config and the data directories
live (checked separately: roles, volumes), and the actor index (explicit per process
in herd up, claimed from Redis by scaled replicas). Everything else, including any
flag added later, must be equal.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Mapping, Optional, Sequence
from unittest import mock

from herd.cli import build_parser
from herd.launch.cluster import ServicePlan

# Where a service runs and how it finds the others: differs by design.
PLUMBING = ("host", "advertise_host", "redis_url", "run_id", "id", "replay_address", "params_address")

# HERD_* variables the deployment files set ahead of flags that other branches add:
# ignored until the flag exists, then compared like any other (ports are plumbing).
AHEAD_OF_FLAGS = {"HERD_METRICS_PORT"}


def _serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse offers no public lookup
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action.choices["serve"]
    raise AssertionError("herd has no serve command")


def serve_env_names() -> dict[str, str]:
    """``HERD_<FLAG>`` environment variable -> flag dest, for every flag of ``herd serve``."""
    names = {}
    for action in _serve_parser()._actions:  # noqa: SLF001
        if action.option_strings and action.dest != "help":
            names["HERD_" + action.dest.upper()] = action.dest
    return names


def parse_serve(args: Sequence[str], environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """What ``herd <args>`` makes of its flags under ``environ`` (only HERD_* variables count)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    clean.update({k: v for k, v in (environ or {}).items() if k.startswith("HERD_")})
    with mock.patch.dict(os.environ, clean, clear=True):
        namespace = build_parser().parse_args(list(args))
    if namespace.command != "serve":
        raise AssertionError(f"not a `herd serve` command: {list(args)}")
    return vars(namespace)


def unknown_herd_variables(environ: Mapping[str, str]) -> list[str]:
    """HERD_* variables that no ``herd serve`` flag reads (a typo, or a flag that was removed)."""
    known = serve_env_names()
    return sorted(k for k in environ if k.startswith("HERD_") and k not in known and k not in AHEAD_OF_FLAGS)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def dir_volumes(parsed: Mapping[str, Any], plan: ServicePlan, mounts: Mapping[str, str]) -> dict[str, str]:
    """Role -> volume holding that directory of ``plan``; ``mounts`` maps mount paths in the
    container to volume (or claim) names. Fails for a directory that is unset or not on a
    volume: its data would vanish with the container."""
    roles = {}
    for flag, role in plan.dirs:
        path = str(parsed[_dest(flag)])
        holders = [name for target, name in mounts.items()
                   if path and (path == target or path.startswith(target.rstrip("/") + "/"))]
        if not holders:
            raise AssertionError(f"{plan.kind}: {flag} {path!r} ({role}) is not on a volume; mounts: {dict(mounts)}")
        roles[role] = holders[0]
    return roles


def normalise(parsed: Mapping[str, Any], plan: ServicePlan) -> dict[str, Any]:
    """``parsed`` with the plumbing, the config path, the data directories and the actor
    index replaced by markers (their placement is checked by the callers)."""
    out = dict(parsed)
    for key in list(out):
        if key in PLUMBING or key == "port" or key.endswith("_port"):
            out[key] = "<plumbing>"
    out["config"] = "<run config>"
    for flag, role in plan.dirs:
        out[_dest(flag)] = f"<dir {role}>"
    if plan.kind == "actor":
        out["actor_index"] = "<actor index>"
    return out


def up_services(config: Any, run_dir: str) -> list[tuple[ServicePlan, dict[str, Any]]]:
    """``herd up``'s services for ``config``: each plan with its parsed ``herd serve`` flags."""
    from herd.launch.cluster import service_plan, service_specs

    plans = {p.name: p for p in service_plan(config)}
    out = []
    for spec in service_specs(config, run_dir, "redis://127.0.0.1:6379/0", "up"):
        if spec.argv[1:3] != ["-m", "herd.cli"]:
            raise AssertionError(f"unexpected herd up command line: {spec.argv}")
        parsed = parse_serve(spec.argv[3:], spec.env)
        plan = plans[spec.name]
        for flag, role in plan.dirs:
            assert parsed[_dest(flag)] == os.path.join(run_dir, role)
        assert parsed["config"] == os.path.join(run_dir, "config.yaml")
        out.append((plan, parsed))
    return out
