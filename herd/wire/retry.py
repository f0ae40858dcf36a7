"""Client-side retries with exponential backoff, for calls that must survive a server restart.

Where it sits: the gRPC clients (``param_server.client``, ``replay_service.client``) wrap
calls whose failure would otherwise crash an actor or learner while a service restarts.
The channel's own retry policy (:mod:`herd.wire.channel`) covers short blips (4 attempts
within ~2 s); this covers the tens of seconds a restart takes (DESIGN.md §8: back within
30 s).

Backoff: ``initial``, doubled after every failure up to ``max_backoff``, each sleep drawn
uniformly from ``[b/2, b]`` so many actors reconnecting to one server do not retry in step.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Collection, TypeVar

import grpc

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
"""Codes worth retrying by default: the server is down/restarting, or an attempt timed out."""


class Backoff:
    """Exponential backoff: ``initial`` multiplied per failure up to ``maximum``, each wait drawn
    from ``[b/2, b]`` (the same interface as ``replay_service.reconnect.Backoff``)."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0, multiplier: float = 2.0) -> None:
        if not 0 < initial <= maximum or multiplier < 1:
            raise ValueError(f"backoff: need 0 < initial <= maximum and multiplier >= 1, "
                             f"got {initial}, {maximum}, {multiplier}")
        self.initial, self.maximum, self.multiplier = initial, maximum, multiplier
        self._next = initial
        self.failures = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt (jittered); grows the bound."""
        bound = self._next
        self._next = min(self._next * self.multiplier, self.maximum)
        self.failures += 1
        return random.uniform(bound / 2, bound)

    def reset(self) -> None:
        """After a success: the next failure waits ``initial`` again."""
        self._next = self.initial
        self.failures = 0


def retry_call(
    fn: Callable[[], T],
    *,
    deadline_seconds: float,
    initial: float = 0.1,
    max_backoff: float = 5.0,
    multiplier: float = 2.0,
    retry_on: Collection[grpc.StatusCode] = RETRYABLE,
    what: str = "rpc",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Calls ``fn()`` until it returns, retrying ``grpc.RpcError``s whose code is in ``retry_on``.

    No attempt starts after ``deadline_seconds`` have passed since the first one: the last
    retryable error is then re-raised (so the total time is at most ``deadline_seconds``
    plus one attempt's own deadline, which ``fn`` sets). Other errors propagate at once.
    """
    if deadline_seconds < 0:
        raise ValueError(f"deadline_seconds must be >= 0, got {deadline_seconds}")
    backoff = Backoff(initial, max_backoff, multiplier)
    give_up_at = clock() + deadline_seconds
    attempt = 1
    while True:
        try:
            return fn()
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            if code not in retry_on:
                raise
            remaining = give_up_at - clock()
            if remaining <= 0:
                raise
            pause = min(backoff.next(), remaining)
            log.warning(
                "retrying after error",
                extra={"what": what, "code": code.name if code else "", "attempt": attempt,
                       "sleep_seconds": round(pause, 3)},
            )
            sleep(pause)
            attempt += 1
