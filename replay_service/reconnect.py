"""How replay clients survive a broken connection: backoff, which codes mean "retry", status -> exception.

Where it sits: ``insert_stream.InsertStream`` and ``sample_stream.SampleStream`` (the long-lived
streams behind ``replay_service.client``) reconnect with :class:`Backoff` when the server
restarts, and turn the statuses that are the caller's fault into the same Python exceptions
the in-process ``Table`` raises (``ValueError``, ``RateLimitTimeout``, ...), via :func:`error_from_rpc`.
"""

from __future__ import annotations

import random
from typing import Optional

import grpc

from herd.interfaces import RateLimitTimeout
from herd.wire.status import (
    FailedPreconditionError,
    NotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
    UnavailableError,
)

CONNECTION_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,  # server down, restarting, or shutting down
        grpc.StatusCode.CANCELLED,  # server cancelled our idle stream on shutdown (we never cancel without closing)
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNKNOWN,  # e.g. "Stream removed" when a connection breaks mid-call
        grpc.StatusCode.INTERNAL,  # e.g. RST_STREAM from a dying transport (the servicer never sends INTERNAL)
    }
)
"""Codes that say the connection broke, not that the request was bad: reconnect and re-send."""


class Backoff:
    """Exponential backoff: ``initial`` doubled per failure up to ``maximum``, each wait drawn from ``[b/2, b]``."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff: need 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial, self.maximum = initial, maximum
        self._next = initial
        self.failures = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt (jittered), and doubles the bound."""
        bound = self._next
        self._next = min(self._next * 2, self.maximum)
        self.failures += 1
        return random.uniform(bound / 2, bound)

    def reset(self) -> None:
        """After a success: the next failure waits ``initial`` again."""
        self._next = self.initial
        self.failures = 0


_EXCEPTIONS: dict[grpc.StatusCode, type[Exception]] = {
    grpc.StatusCode.INVALID_ARGUMENT: ValueError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RateLimitTimeout,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def status_code(exc: BaseException) -> Optional[grpc.StatusCode]:
    """The status code of a ``grpc.RpcError`` (None for anything else)."""
    code = getattr(exc, "code", None)
    return code() if callable(code) else None


def error_from_rpc(exc: grpc.RpcError, what: str) -> Exception:
    """The Python exception for a failed call (``exc`` is kept as its ``__cause__`` and ``.rpc_error``)."""
    code = status_code(exc)
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)  # type: ignore[attr-defined]
    cls = _EXCEPTIONS.get(code, RuntimeError) if code is not None else RuntimeError
    name = code.name if code is not None else "?"
    error = cls(f"{what}: {details} [{name}]")
    error.__cause__ = exc
    error.rpc_error = exc  # type: ignore[attr-defined]
    return error
