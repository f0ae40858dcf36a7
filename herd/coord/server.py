"""A throwaway local ``redis-server`` for tests and ``herd up``.

:class:`LocalRedis` runs a real Redis as a child process on a loopback port, with
no persistence (``--save '' --appendonly no``): stopping it loses everything,
which is what ``restart()`` uses to simulate Redis losing its state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
from typing import Sequence

import redis
import redis.exceptions as rexc

from herd.fsutil import find_executable, tail_lines
from herd.procutil import terminate


def find_redis_server() -> str:
    """Path of the ``redis-server`` binary (``$HERD_REDIS_SERVER``, else PATH)."""
    return find_executable("redis-server", "HERD_REDIS_SERVER", "run `make setup` (it installs redis-server)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalRedis:
    """``with LocalRedis() as r: Coordinator(r.url, "run")`` — a private Redis server."""

    def __init__(
        self,
        *,
        port: int = 0,
        password: str | None = None,
        executable: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
        log_path: str | None = None,
    ) -> None:
        """``port=0`` picks a free port at ``start()`` (kept across restarts); ``log_path``
        receives the server's log (default: inside its temporary working directory)."""
        self.host = "127.0.0.1"
        self.password = password
        self.executable = executable or find_redis_server()
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self._fixed_port = port
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self.alive()

    def alive(self) -> bool:
        """True while the server process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> LocalRedis:
        """Starts the server (on a free port unless one was given) and waits for PING."""
        if self.running:
            return self
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="herd-redis-")
        attempts = 1 if (self._fixed_port or self.port) else 3
        for attempt in range(attempts):
            if not (self._fixed_port or self.port):
                self.port = free_port(self.host)
            try:
                self._spawn()
                return self
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.port = 0  # somebody took the port between probe and bind: pick another
        return self

    def _spawn(self) -> None:
        assert self._dir is not None
        log_path = self.log_path or os.path.join(self._dir.name, "redis.log")
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        args = [self.executable, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", self._dir.name, "--logfile", log_path]  # fmt: skip
        if self.password:
            # Read from stdin ("-"), not the command line, which every local user can see in ps.
            args.insert(1, "-")
        self._proc = subprocess.Popen([*args, *self.extra_args], stdin=subprocess.PIPE if self.password
                                      else subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        if self.password:
            assert self._proc.stdin is not None
            quoted = self.password.replace("\\", "\\\\").replace('"', '\\"')
            self._proc.stdin.write(f'requirepass "{quoted}"\n'.encode())
            self._proc.stdin.close()
        client = redis.Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    self._proc = None
                    raise RuntimeError(f"redis-server exited at start-up on port {self.port}:\n{tail_lines(log_path)}")
                try:
                    if client.ping():
                        return
                except rexc.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"redis-server did not answer PING within {self.startup_timeout}s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it does not exit in ``timeout``)."""
        if self._proc is None:
            return
        terminate(self._proc, timeout)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL, like a crash: clients see their connections drop."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Kills (if running) and starts again on the same port with empty data (Redis lost its state)."""
        self.kill()
        if not self.port:
            self.start()
            return
        self._spawn()

    def close(self) -> None:
        """Stops the server and removes its working directory."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
