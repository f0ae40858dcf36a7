"""Running a service's ``serve(config, stop_event=, on_ready=)`` in a thread, for tests.

The service is real (real gRPC on a loopback port); only the process boundary is
missing. ``stop()`` shuts it down the way SIGTERM would and re-raises anything
``serve`` raised.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class ServiceThread:
    """``ServiceThread(serve, config)`` starts at once; ``.port`` / ``.address`` once it listens."""

    def __init__(
        self, serve: Callable[..., None], config: Any, *, name: str = "service", timeout: float = 10.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.config = config
        self.name = name
        self._stop = threading.Event()
        self._stop_timeout = stop_timeout
        self._errors: list[BaseException] = []
        ready: list[int] = []
        started = threading.Event()

        def on_ready(port: int) -> None:
            ready.append(port)
            started.set()

        def run() -> None:
            try:
                serve(config, stop_event=self._stop, on_ready=on_ready)
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self._errors.append(exc)
                started.set()

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        assert started.wait(timeout), f"{name} did not start"
        if self._errors:
            raise self._errors[0]
        self.port = ready[0]
        self.address = f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self._stop_timeout)
        assert not self._thread.is_alive(), f"{self.name} did not stop"
        if self._errors:
            raise self._errors[0]
