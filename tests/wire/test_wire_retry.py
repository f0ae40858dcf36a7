"""herd.wire.retry: exponential backoff on retryable status codes, bounded by a deadline."""

from __future__ import annotations

import grpc
import pytest

from herd.wire.retry import Backoff, retry_call


class _Error(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _failing(codes):
    codes = list(codes)

    def fn():
        if codes:
            raise _Error(codes.pop(0))
        return "ok"

    return fn


def test_retries_unavailable_with_growing_backoff():
    clock = _Clock()
    fn = _failing([grpc.StatusCode.UNAVAILABLE] * 4 + [grpc.StatusCode.DEADLINE_EXCEEDED])
    assert retry_call(fn, deadline_seconds=100, initial=0.1, max_backoff=0.4,
                      sleep=clock.sleep, clock=lambda: clock.now) == "ok"
    bounds = [0.1, 0.2, 0.4, 0.4, 0.4]  # doubled, capped at max_backoff; jittered in [b/2, b]
    assert len(clock.sleeps) == 5
    assert all(b / 2 <= s <= b for s, b in zip(clock.sleeps, bounds))


def test_other_codes_propagate_at_once():
    clock = _Clock()
    with pytest.raises(grpc.RpcError) as info:
        retry_call(_failing([grpc.StatusCode.INVALID_ARGUMENT]), deadline_seconds=100, sleep=clock.sleep,
                   clock=lambda: clock.now)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and clock.sleeps == []


def test_gives_up_at_the_deadline():
    clock = _Clock()
    with pytest.raises(grpc.RpcError) as info:
        retry_call(_failing([grpc.StatusCode.UNAVAILABLE] * 1000), deadline_seconds=3, max_backoff=1,
                   sleep=clock.sleep, clock=lambda: clock.now)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert clock.now == pytest.approx(3)  # the last sleep is cut to the deadline


def test_retry_on_is_configurable_and_backoff_validates():
    clock = _Clock()
    with pytest.raises(grpc.RpcError):
        retry_call(_failing([grpc.StatusCode.DEADLINE_EXCEEDED]), deadline_seconds=10,
                   retry_on=(grpc.StatusCode.UNAVAILABLE,), sleep=clock.sleep, clock=lambda: clock.now)
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)
    backoff = Backoff(initial=1, maximum=2)
    backoff.next(), backoff.next()
    assert backoff.failures == 2
    backoff.reset()
    assert backoff.failures == 0 and 0.5 <= backoff.next() <= 1
