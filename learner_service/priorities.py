"""Priority updates sent to the replay in batches, off the learner's critical path.

Where it sits: ``Learner.step`` hands each update's ``(keys, priorities)`` to a
``PriorityWriter``, which returns at once; a background thread merges what has queued
up (the newest priority of a key wins) and sends one ``UpdatePriorities`` call per batch.
A replay that is down is retried by its client; updates that queue up meanwhile are
merged, so the queue stays bounded by the number of distinct keys.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)


class PriorityWriter:
    """Queues priority updates and sends them from a thread, at most one call in flight."""

    def __init__(self, send: Callable[[Sequence[int], np.ndarray], None], max_delay_seconds: float = 0.02) -> None:
        self._send = send
        self.max_delay_seconds = max_delay_seconds
        self._pending: dict[int, float] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.sent_calls = 0
        self.sent_keys = 0
        self._thread = threading.Thread(target=self._run, name="priorities", daemon=True)
        self._thread.start()

    def __call__(self, keys: np.ndarray, priorities: np.ndarray) -> None:
        with self._cond:
            self._pending.update(zip(np.asarray(keys).tolist(), np.asarray(priorities, np.float64).tolist()))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                # Let a few updates' worth gather: one call instead of one per update.
                self._cond.wait(self.max_delay_seconds)
                batch, self._pending = self._pending, {}
            try:
                self._send(list(batch), np.fromiter(batch.values(), np.float64, len(batch)))
                self.sent_calls += 1
                self.sent_keys += len(batch)
            except Exception as e:  # noqa: BLE001 - replay restarting: these priorities are lost, later ones are not
                log.warning("priority update failed", extra={"error": str(e), "keys": len(batch)})

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued, then stops the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
