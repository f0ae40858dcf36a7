"""The agents Herd knows: name -> the module that holds its ``SPEC`` (``herd.agents.spec``).

A new agent is one folder ``herd/agents/<name>/`` and one line here. Modules are imported
only when their agent is asked for.
"""

from __future__ import annotations

import importlib

from herd import config as hc
from herd import docs_links
from herd.agents.spec import AgentSpec

AGENTS: dict[str, str] = {
    "impala": "herd.agents.impala.spec",
    "dqn": "herd.agents.dqn.spec",
}


def get(name: str) -> AgentSpec:
    """The spec of agent ``name``; ``ConfigError`` naming the known agents otherwise."""
    if name not in AGENTS:
        raise hc.ConfigError(f"config key 'agent_name': unknown agent {name!r}; known agents: {', '.join(AGENTS)}",
                             docs_links.AGENTS)
    spec = importlib.import_module(AGENTS[name]).SPEC
    assert isinstance(spec, AgentSpec) and spec.name == name, (name, spec)
    return spec


def names() -> list[str]:
    return list(AGENTS)
