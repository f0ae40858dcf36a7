"""Publishing weights without waiting for the parameter server.

Where it sits: the learner service wraps its ``ParamClient`` in an
``AsyncPublisher`` so an update never waits on a publish round trip (on a
2-core machine that wait was half of the learner's loop). ``publish`` hands the
weights to a background thread and returns; when a newer version arrives before
an older one was sent, only the newer one goes out (actors only want the
newest). ``flush`` waits until everything handed over is on the server, which
the learner does before its first step and before its final checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Mapping, Optional

import numpy as np

from herd.interfaces import StaleVersionError, VariablePublisher

log = logging.getLogger("herd.learner")


class AsyncPublisher:
    """``VariablePublisher`` that returns at once; one thread sends the newest pending version per name."""

    def __init__(self, inner: VariablePublisher, *, retry_seconds: float = 0.5) -> None:
        self.inner = inner
        self.retry_seconds = retry_seconds
        self.sent = 0
        self.superseded = 0
        self.failures = 0
        self._pending: dict[str, tuple[int, Mapping[str, np.ndarray]]] = {}
        self._last_version: dict[str, int] = {}  # newest version handed over per name
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def publish(self, name: str, version: int, tensors: Mapping[str, np.ndarray]) -> None:
        """Queues ``version`` of ``name`` (replacing an unsent older one); never blocks on the network.

        ``tensors`` must not change afterwards (the learner hands over copies).
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("publisher is closed")
            last = self._last_version.get(name)
            if last is not None and version <= last:
                raise StaleVersionError(f"version {version} of {name!r} does not increase (last handed over: {last})")
            if name in self._pending:
                self.superseded += 1
            self._pending[name] = (version, tensors)
            self._last_version[name] = version
            self._cond.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every queued version is sent (or given up); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued (up to ``timeout``), then stops the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return  # closed with nothing left
                name = next(iter(self._pending))
                version, tensors = self._pending.pop(name)
                self._busy = True
            try:
                self.inner.publish(name, version, tensors)
                self.sent += 1
            except StaleVersionError as e:
                log.warning("publish refused as stale", extra={"param_name": name, "version": version, "error": str(e)})
            except Exception as e:  # noqa: BLE001 - params server down past the client's retries
                self.failures += 1
                log.warning("publish failed, will retry", extra={"param_name": name, "version": version,
                                                                 "error": str(e)})
                with self._cond:
                    self._pending.setdefault(name, (version, tensors))  # unless a newer one came meanwhile
                    self._busy = False
                    self._cond.notify_all()
                    if self._closed:
                        return
                time.sleep(self.retry_seconds)
                continue
            with self._cond:
                self._busy = False
                self._cond.notify_all()
