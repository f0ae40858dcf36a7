"""Python exceptions -> gRPC status codes, in one table every servicer shares.

Servicers run their plain-Python core and let it raise; :func:`rpc_errors` turns
what it raised into the status code of DESIGN.md §3 with the exception's message,
so a bad request never surfaces as ``UNKNOWN`` and never takes the server down.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, TypeVar

import grpc

from herd.interfaces import RateLimitTimeout, StaleVersionError

log = logging.getLogger(__name__)


class NotFoundError(KeyError):
    """An unknown table, parameter name or other named thing (``NOT_FOUND``)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class ResourceExhaustedError(RuntimeError):
    """A request over a size or count limit (``RESOURCE_EXHAUSTED``)."""


class OutOfRangeError(ValueError):
    """A value outside the range it may take (``OUT_OF_RANGE``)."""


class FailedPreconditionError(RuntimeError):
    """The system is not in a state that allows this call (``FAILED_PRECONDITION``)."""


class UnavailableError(ConnectionError):
    """The service cannot take the call now, e.g. it is shutting down (``UNAVAILABLE``: clients retry)."""


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code for an exception raised by a service's core."""
    # Order matters: subclasses before their bases.
    if isinstance(exc, UnavailableError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, StaleVersionError) or isinstance(exc, FailedPreconditionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, ResourceExhaustedError) or isinstance(exc, MemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, OutOfRangeError):
        return grpc.StatusCode.OUT_OF_RANGE
    if isinstance(exc, (RateLimitTimeout, TimeoutError)):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError, OverflowError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


F = TypeVar("F", bound=Callable[..., Any])


def rpc_errors(method: F) -> F:
    """Wraps a servicer method (unary or streaming) so exceptions become statuses."""

    def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
        code = status_for(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("internal error in %s", method.__qualname__)
        context.abort(code, f"{type(exc).__name__}: {exc}" if code == grpc.StatusCode.INTERNAL else str(exc))

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                yield from method(self, request, context)
            except grpc.RpcError:
                raise
            except Exception as exc:  # noqa: BLE001 - every error becomes a status
                if not context.is_active():
                    return
                _abort(context, exc)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except grpc.RpcError:
            raise
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc)

    return unary  # type: ignore[return-value]
