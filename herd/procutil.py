"""Stopping a child process politely, then firmly (Redis, Prometheus, test services)."""

from __future__ import annotations

import signal
import subprocess
from typing import Optional


def terminate(proc: subprocess.Popen, timeout: float = 10.0) -> Optional[int]:
    """SIGTERM ``proc`` if it still runs, SIGKILL it after ``timeout`` seconds; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode
