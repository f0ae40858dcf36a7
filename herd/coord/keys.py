"""Every Redis key of a run, in one place (DESIGN.md §5).

All of a run lives under ``herd:{run_id}:``, so two runs can share one Redis and
``SCAN herd:{run_id}:*`` finds everything a run wrote:

=====================  ======================================================
``config``             the run config as JSON (string)
``svc:{kind}:{id}``    one service's registration, JSON, with a TTL refreshed
                       by its heartbeat (string)
``counters``           run-wide counters: env_steps, episodes, learner_steps...
                       (hash, ``HINCRBY``)
``lease:{name}``       holder id with a TTL, e.g. ``lease:learner`` (string)
``stop``               present = every service of the run should stop (string)
``episodes``           finished episodes, capped at ~``EPISODES_MAXLEN`` (stream)
=====================  ======================================================
"""

from __future__ import annotations

import dataclasses
import re

PREFIX = "herd"

# Kinds of services that register; discovery looks them up by kind.
REPLAY, PARAMS, LEARNER, ACTOR = "replay", "params", "learner", "actor"
KINDS: tuple[str, ...] = (REPLAY, PARAMS, LEARNER, ACTOR)

# Approximate cap of the episodes stream (XADD MAXLEN ~): old episodes fall off.
EPISODES_MAXLEN = 100_000

# Names that go inside a key: no separator, no whitespace, no glob characters
# (service keys are found with SCAN MATCH, so a '*' in an id would match others).
_NAME = re.compile(r"^[^\s:{}*?\[\]\\]+$")


def check_name(what: str, value: str) -> str:
    """Returns ``value`` if it can be one segment of a key, else raises ValueError."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{what} must be non-empty without spaces, ':', braces or glob characters, got {value!r}")
    return value


def check_kind(kind: str) -> str:
    """Returns ``kind`` if it is one of :data:`KINDS` (a typo would make discovery wait forever)."""
    if kind not in KINDS:
        raise ValueError(f"unknown service kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


@dataclasses.dataclass(frozen=True)
class RunKeys:
    """The key names of one run: ``RunKeys("r1").counters == "herd:r1:counters"``."""

    run_id: str

    def __post_init__(self) -> None:
        check_name("run_id", self.run_id)

    @property
    def prefix(self) -> str:
        return f"{PREFIX}:{self.run_id}:"

    @property
    def config(self) -> str:
        return self.prefix + "config"

    @property
    def counters(self) -> str:
        return self.prefix + "counters"

    @property
    def stop(self) -> str:
        return self.prefix + "stop"

    @property
    def episodes(self) -> str:
        return self.prefix + "episodes"

    def svc(self, kind: str, service_id: str) -> str:
        return f"{self.prefix}svc:{check_kind(kind)}:{check_name('service id', service_id)}"

    def svc_pattern(self, kind: str | None = None) -> str:
        """SCAN MATCH pattern for the registrations of ``kind`` (all kinds if None)."""
        return f"{self.prefix}svc:{check_kind(kind) if kind else '*'}:*"

    def lease(self, name: str) -> str:
        return f"{self.prefix}lease:{check_name('lease name', name)}"
