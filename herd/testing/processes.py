"""A service in its own OS process, for fault-injection and soak tests (kill -9, restart, RSS).

``ServiceProcess([sys.executable, "-m", "replay_service.main", ...], ready="replay serving")``
starts the command, collects its JSON log lines (stderr) in a background thread, and waits
for the line whose ``msg`` is ``ready`` to learn the port it bound.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from typing import Any, Optional, Sequence
from herd.procutil import terminate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ServiceProcess:
    """A running service process; ``.port``/``.address`` once it logged ``ready``."""

    def __init__(self, argv: Sequence[str], *, ready: str, timeout: float = 60.0,
                 env: Optional[dict[str, str]] = None) -> None:
        full_env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
        self.proc = subprocess.Popen(list(argv), cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, env=full_env)
        self.logs: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_for_log(ready, timeout)
        self.port = int(line["port"])
        self.address = f"127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for text in self.proc.stderr:
            with self._seen:
                self.raw.append(text)
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:
                    record = None
                if isinstance(record, dict):
                    self.logs.append(record)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for_log(self, msg: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first log record whose message contains ``msg``; AssertionError after ``timeout`` or on exit."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                for record in self.logs:
                    if msg in str(record.get("msg", "")):
                        return record
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    tail = "".join(self.raw[-20:])
                    raise AssertionError(f"no log line {msg!r} (exit code {self.proc.poll()}); last lines:\n{tail}")
                self._seen.wait(min(left, 0.2))

    def find_logs(self, msg: str) -> list[dict[str, Any]]:
        with self._seen:
            return [r for r in self.logs if msg in str(r.get("msg", ""))]

    def rss_bytes(self) -> int:
        """Resident set size of the process now (from /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs (no final checkpoint, no flush)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (SIGKILL if it does not exit in ``timeout``); returns the exit code."""
        code = terminate(self.proc, timeout)
        self._reader.join(5)
        return code
