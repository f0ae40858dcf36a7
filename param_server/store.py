"""The versioned parameter store: the learner publishes weights, actors pull them.

Plain Python, no transport. ``param_server.servicer`` serves it over gRPC and
``param_server.client`` offers the same ``fetch`` / ``publish`` interface, so the
actor loop and learner run unchanged in one process or across a cluster.
"""

from __future__ import annotations

import threading
from typing import Mapping, Optional

import numpy as np

from herd.interfaces import Params, StaleVersionError


class ParameterStore:
    """Holds the latest version of each named set of weights.

    Publishes must carry strictly increasing versions per name (the learner's
    step count), so an actor can never go back to older weights.
    """

    def __init__(self) -> None:
        self._latest: dict[str, Params] = {}
        self._changed = threading.Condition()

    def publish(self, name: str, version: int, tensors: Mapping[str, np.ndarray]) -> None:
        """Stores ``tensors`` as ``version`` of ``name``; the arrays are copied."""
        if not name:
            raise ValueError("parameter name must not be empty")
        if version < 0:
            raise ValueError(f"version must be >= 0, got {version}")
        frozen = {}
        for key, value in tensors.items():
            array = np.array(value, copy=True)
            array.flags.writeable = False  # shared with every reader: never mutated
            frozen[key] = array
        with self._changed:
            current = self._latest.get(name)
            if current is not None and version <= current.version:
                raise StaleVersionError(
                    f"parameters '{name}': version {version} does not increase "
                    f"(latest is {current.version})"
                )
            self._latest[name] = Params(version=version, tensors=frozen)
            self._changed.notify_all()

    def fetch(self, name: str, min_version: int = 0) -> Optional[Params]:
        """The latest ``Params`` of ``name`` if its version is ``>= min_version``, else ``None``."""
        with self._changed:
            params = self._latest.get(name)
        if params is None or params.version < min_version:
            return None
        return params

    def wait_for(self, name: str, min_version: int, timeout: Optional[float]) -> Optional[Params]:
        """Blocks until ``name`` reaches ``min_version`` (used by ``Subscribe``); ``None`` on timeout."""
        with self._changed:
            self._changed.wait_for(
                lambda: name in self._latest and self._latest[name].version >= min_version,
                timeout=timeout,
            )
            params = self._latest.get(name)
        if params is None or params.version < min_version:
            return None
        return params

    def versions(self) -> dict[str, int]:
        """Name -> latest version, for status displays."""
        with self._changed:
            return {name: p.version for name, p in self._latest.items()}
