"""The parameter server seen from the learner and the actors: ``ParamClient``.

Where it sits: satisfies ``herd.interfaces.VariableSource`` (actors ``fetch``) and
``VariablePublisher`` (the learner ``publish``es), exactly like the in-process
``ParameterStore``, so the same actor loop and learner run against either.

Failure handling: every call has a deadline (``timeout``); ``fetch``, ``publish`` and
``list`` retry ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED`` with exponential backoff for up to
``retry_seconds`` (a restarting server does not crash the caller); ``subscribe`` reconnects
on its own. Errors map back to the in-process exceptions: ``StaleVersionError``
(FAILED_PRECONDITION), ``ValueError`` (INVALID_ARGUMENT), ``ResourceExhaustedError``.

Fetched tensors are numpy arrays viewing one writable buffer per version; bfloat16 tensors
(no numpy dtype) come back as torch tensors.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Iterator, Mapping, Optional

import grpc

from herd.interfaces import Params, StaleVersionError
from herd.options import SecurityOptions
from herd.v1 import params_pb2, params_pb2_grpc
from herd.wire.channel import DEFAULT_MAX_MESSAGE_BYTES, make_channel
from herd.wire.codec import encode_parts
from herd.wire.retry import Backoff, retry_call
from herd.wire.status import ResourceExhaustedError
from param_server.chunks import Assembled, Assembler, ParamsManifest, check_name, decode_tensors, serialized_chunks

_RECONNECT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclasses.dataclass(frozen=True)
class ParamsInfo:
    """One stored parameter set, as ``list`` reports it."""

    name: str
    version: int
    total_bytes: int
    num_tensors: int
    published_unix_ms: int


class ParamClient:
    """A connection to one parameter server (thread-safe; one channel)."""

    def __init__(
        self,
        address: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        timeout: float = 10.0,
        chunk_bytes: int = 1024 * 1024,
        retry_seconds: float = 60.0,
        subscribe_stream_seconds: float = 300.0,
        security: Optional[SecurityOptions] = None,
    ) -> None:
        """``security``: TLS and the token for the channel (``herd.options.SecurityOptions``)."""
        if timeout <= 0 or retry_seconds < 0 or subscribe_stream_seconds <= 0:
            raise ValueError("timeout and subscribe_stream_seconds must be > 0, retry_seconds >= 0")
        if not 0 < chunk_bytes <= max_message_bytes // 2:
            raise ValueError(f"chunk_bytes must be in (0, {max_message_bytes // 2}], got {chunk_bytes}")
        self.address = address
        self._timeout = timeout
        self._chunk_bytes = chunk_bytes
        self._retry_seconds = retry_seconds
        self._stream_seconds = subscribe_stream_seconds
        self._channel = make_channel(address, max_message_bytes=max_message_bytes, security=security)
        self._stub = params_pb2_grpc.ParameterServiceStub(self._channel)
        # Publish sends chunks serialized by param_server.chunks (one copy of the data, not three).
        self._publish = self._channel.stream_unary(
            "/herd.v1.ParameterService/Publish",
            request_serializer=None,
            response_deserializer=params_pb2.PublishResponse.FromString,
        )
        self._closed = threading.Event()

    # -- VariableSource ------------------------------------------------------------------

    def fetch(self, name: str, min_version: int = 0) -> Optional[Params]:
        """Latest ``Params`` of ``name`` if its version is ``>= min_version``; ``None`` when the
        caller is current or nothing was published under ``name`` yet."""
        check_name(name)
        if min_version < 0:
            raise ValueError(f"min_version must be >= 0, got {min_version}")
        request = params_pb2.FetchRequest(name=name, min_version=min_version)

        def attempt() -> Optional[Params]:
            call = self._stub.Fetch(request, timeout=self._timeout)
            try:
                assembler = Assembler()
                for chunk in call:
                    assembler.add(chunk)
                if assembler.manifest is None:
                    return None  # the empty stream: nothing newer than min_version
                return _params(assembler.finish())
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            finally:
                call.cancel()  # no-op when the stream completed

        return self._retry(attempt, f"fetch {name}")

    # -- VariablePublisher ---------------------------------------------------------------

    def publish(self, name: str, version: int, tensors: Mapping[str, Any]) -> None:
        """Stores ``tensors`` (numpy arrays or torch tensors) as ``version`` of ``name``.

        Raises ``StaleVersionError`` unless ``version`` is above the stored one (a retry
        that finds its own earlier attempt stored counts as success).
        """
        check_name(name)
        if version < 0:
            raise ValueError(f"version must be >= 0, got {version}")
        manifest = ParamsManifest(name=name, version=version)
        parts: list[bytes] = []
        for key, value in tensors.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"tensor names must be non-empty strings, got {key!r}")
            dtype, shape, data = encode_parts(value, name=key)
            manifest.tensors.add(name=key, dtype=dtype, shape=shape)
            parts.append(data)
        manifest.total_bytes = sum(len(p) for p in parts)
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            self._publish(serialized_chunks(manifest, parts, self._chunk_bytes), timeout=self._timeout)

        try:
            self._retry(attempt, f"publish {name}")
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                if attempts > 1 and self._stored_version(name) == version:
                    return  # an earlier attempt was stored; only its answer was lost
                raise StaleVersionError(exc.details()) from None
            raise

    def _stored_version(self, name: str) -> Optional[int]:
        return next((info.version for info in self.list() if info.name == name), None)

    # -- streams and status --------------------------------------------------------------

    def subscribe(self, name: str, after_version: int = -1) -> Iterator[Params]:
        """Yields every new version of ``name`` after ``after_version`` (-1: start with the latest),
        skipping versions a slow consumer missed; reconnects while the server restarts.

        Runs until the client is closed or the iterator is closed; raises once the server
        has been unreachable for ``retry_seconds``.
        """
        check_name(name)
        if after_version < -1:
            raise ValueError(f"after_version must be >= -1, got {after_version}")
        last = after_version
        backoff = Backoff()
        failing_since: Optional[float] = None
        while not self._closed.is_set():
            # Each stream has a deadline too; on expiry it is reopened after `last`.
            request = params_pb2.SubscribeRequest(name=name, after_version=last)
            call = self._stub.Subscribe(request, timeout=self._stream_seconds)
            try:
                assembler: Optional[Assembler] = None
                for chunk in call:
                    failing_since = None
                    backoff.reset()
                    if assembler is None:
                        assembler = Assembler()
                    assembler.add(chunk)
                    if assembler.complete:
                        params = _params(assembler.finish())
                        assembler = None
                        last = params.version
                        yield params
                # Ended with OK: the server is shutting down. Reconnect after a pause.
                self._closed.wait(backoff.next())
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    return
                if exc.code() not in _RECONNECT:
                    raise _mapped(exc) from None
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > self._retry_seconds:
                        raise
                    self._closed.wait(backoff.next())
            finally:
                call.cancel()

    def list(self) -> list[ParamsInfo]:
        """Every stored parameter set with its latest version."""
        response = self._retry(
            lambda: self._stub.List(params_pb2.ListRequest(), timeout=self._timeout), "list"
        )
        return [
            ParamsInfo(p.name, p.version, p.total_bytes, p.num_tensors, p.published_unix_ms)
            for p in response.params
        ]

    def close(self) -> None:
        """Closes the channel; open subscriptions end."""
        self._closed.set()
        self._channel.close()

    def __enter__(self) -> "ParamClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retry(self, fn: Any, what: str) -> Any:
        try:
            return retry_call(fn, deadline_seconds=self._retry_seconds, what=what)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise
            raise _mapped(exc) from None


def _params(assembled: Assembled) -> Params:
    return Params(version=assembled.manifest.version, tensors=decode_tensors(assembled))  # type: ignore[arg-type]


def _mapped(exc: grpc.RpcError) -> Exception:
    """The in-process exception for a status, or the ``RpcError`` itself."""
    code = exc.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValueError(exc.details())
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhaustedError(exc.details())
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return StaleVersionError(exc.details())
    return exc
