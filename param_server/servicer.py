"""The gRPC face of the parameter store: ``herd.v1.ParameterService`` (protos/herd/v1/params.proto).

Where it sits: the learner publishes each new version here (``Publish``); actors pull
(``Fetch``) or follow (``Subscribe``) it. The servicer reassembles and checks a
version's chunks, persists it (when a data directory is set) *before* acknowledging,
stores it in the plain ``ParameterStore``, and serializes its outgoing chunks once, so
any number of actors fetching the same version cost no re-encoding: Fetch and Subscribe
send the cached bytes as they are (see :func:`add_to_server`).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import threading
import time
from typing import Any, Callable, Iterator, Optional

import grpc
from google.protobuf.message import DecodeError, Message

from herd.interfaces import StaleVersionError
from herd.telemetry.metrics import ParamServerMetrics, new_registry
from herd.v1 import params_pb2, params_pb2_grpc
from herd.wire.status import NotFoundError, ResourceExhaustedError, rpc_errors
from param_server.chunks import Assembled, Assembler, ParamsChunk, ParamsManifest, check_name, decode_tensors, serialized_chunks
from param_server.config import ParamServerConfig
from param_server.persist import ParamsDir
from param_server.store import ParameterStore

log = logging.getLogger(__name__)

SERVICE_NAME = params_pb2.DESCRIPTOR.services_by_name["ParameterService"].full_name


@dataclasses.dataclass(frozen=True)
class _Version:
    """The latest version of one name, ready to send: its chunks serialized once."""

    manifest: ParamsManifest
    chunks: tuple[bytes, ...]  # serialized ParamsChunk messages, manifest first
    published_unix_ms: int
    nbytes: int = 0  # of all chunks: what one Fetch of this version sends


class ParameterServicer(params_pb2_grpc.ParameterServiceServicer):
    """Publish / Fetch / Subscribe / List over a :class:`ParameterStore` (+ optional persistence)."""

    def __init__(
        self,
        store: Optional[ParameterStore] = None,
        *,
        chunk_bytes: int = 1024 * 1024,
        max_total_bytes: int = 2 * 1024**3,
        data_dir: str = "",
        max_subscribers: int = 16,
        wait_slice_seconds: float = 0.2,
        persist_every_seconds: float = 0.0,
        metrics: Optional[ParamServerMetrics] = None,
    ) -> None:
        self.store = store if store is not None else ParameterStore()
        self._metrics = metrics or ParamServerMetrics(new_registry())
        self._metrics.watch(self.store.versions)
        self._chunk_bytes = chunk_bytes
        self._max_total_bytes = max_total_bytes
        self._wait_slice = wait_slice_seconds
        self._max_subscribers = max_subscribers
        self._subscribers = 0
        self._subscribers_lock = threading.Lock()
        self._versions: dict[str, _Version] = {}
        self._publish_lock = threading.Lock()  # one commit (check, persist, store) at a time
        self._closed = threading.Event()
        self._dir = ParamsDir(data_dir) if data_dir else None
        self.last_persist_seconds = 0.0
        """Wall time of the last write to ``data_dir`` (0 without persistence)."""
        if self._dir is not None:
            self._reload(self._dir)
        # Background persistence: the learner publishes many times a second, and an fsync
        # per publish would be its bottleneck. Only the newest unsaved version of a name is kept.
        self._persist_every = persist_every_seconds
        self._unsaved: dict[str, tuple[Assembled, int]] = {}
        self._persist_lock = threading.Lock()
        self._persister: Optional[threading.Thread] = None
        if self._dir is not None and persist_every_seconds > 0:
            self._persister = threading.Thread(target=self._persist_loop, name="params-persist", daemon=True)
            self._persister.start()

    @classmethod
    def from_config(cls, config: ParamServerConfig, metrics: Optional[ParamServerMetrics] = None) -> "ParameterServicer":
        """A servicer as ``config`` describes, reloaded from its ``data_dir``."""
        return cls(chunk_bytes=config.chunk_bytes, max_total_bytes=config.max_total_bytes,
                   data_dir=config.data_dir, max_subscribers=config.max_subscribers,
                   persist_every_seconds=config.persist_every_seconds, metrics=metrics)

    def end_streams(self) -> None:
        """Ends every open ``Subscribe`` stream (with OK) within one wait slice; first step of shutdown."""
        self._closed.set()

    def close(self) -> None:
        """Ends the streams and writes unsaved versions; the last step of shutdown."""
        self._closed.set()
        if self._persister is not None:
            self._persister.join(timeout=30.0)
        self.flush()

    def flush(self) -> None:
        """Writes the newest unsaved version of every name to ``data_dir`` now."""
        if self._dir is None:
            return
        with self._persist_lock:
            pending, self._unsaved = self._unsaved, {}
        for assembled, published in pending.values():
            try:
                self._persist(self._dir, assembled, published)
            except Exception:  # noqa: BLE001 - logged; the next version will try again
                log.exception("persisting parameters failed", extra={"param_name": assembled.manifest.name})

    def _persist_loop(self) -> None:
        while not self._closed.wait(self._persist_every):
            self.flush()

    # -- the plain-Python core the RPCs share -------------------------------------------

    def commit(self, assembled: Assembled, *, published_unix_ms: Optional[int] = None, persist: bool = True) -> None:
        """Stores a complete version: stale check, persist (durable on return), store, cache its chunks."""
        manifest = assembled.manifest
        with self._publish_lock:
            self._check_increases(manifest)
            published = published_unix_ms if published_unix_ms is not None else int(time.time() * 1000)
            # Built before the store learns of the version: Subscribe waits on the store and
            # then reads _versions, which must already hold what woke it.
            chunks = tuple(serialized_chunks(manifest, [assembled.data], self._chunk_bytes))
            entry = _Version(manifest, chunks, published, sum(map(len, chunks)))
            tensors = decode_tensors(assembled, bfloat16="raw")  # views; the store copies them
            if self._dir is not None and persist:
                if self._persister is None:
                    self._persist(self._dir, assembled, published)  # durable before the ack
                else:
                    with self._persist_lock:
                        self._unsaved[manifest.name] = (assembled, published)
            previous = self._versions.get(manifest.name)
            self._versions[manifest.name] = entry
            try:
                self.store.publish(manifest.name, manifest.version, tensors)
            except BaseException:
                if previous is None:
                    self._versions.pop(manifest.name, None)
                else:
                    self._versions[manifest.name] = previous
                raise

    def _check_increases(self, manifest: ParamsManifest) -> None:
        entry = self._versions.get(manifest.name)
        if entry is not None and manifest.version <= entry.manifest.version:
            raise StaleVersionError(
                f"parameters {manifest.name!r}: version {manifest.version} does not increase "
                f"(latest is {entry.manifest.version})"
            )

    def _persist(self, directory: ParamsDir, assembled: Assembled, published: int) -> None:
        t0 = time.perf_counter()
        try:
            directory.save(assembled, published)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ResourceExhaustedError(f"no space left to persist {assembled.manifest.name!r}") from exc
            raise
        self.last_persist_seconds = time.perf_counter() - t0
        log.debug("persisted", extra={"param_name": assembled.manifest.name, "version": assembled.manifest.version,
                                      "bytes": len(assembled.data), "seconds": self.last_persist_seconds})

    def _reload(self, directory: ParamsDir) -> None:
        for stored in directory.load_all():
            manifest = stored.assembled.manifest
            try:
                self.commit(stored.assembled, published_unix_ms=stored.published_unix_ms, persist=False)
            except (ValueError, StaleVersionError) as exc:  # e.g. bool bytes other than 0/1
                log.warning("skipping persisted parameters", extra={"path": stored.path, "error": str(exc)})
                continue
            log.info("reloaded parameters", extra={"param_name": manifest.name, "version": manifest.version,
                                                   "bytes": manifest.total_bytes})

    # -- RPCs ---------------------------------------------------------------------------

    @rpc_errors
    def Publish(self, request_iterator: Iterator[ParamsChunk], context: grpc.ServicerContext) -> params_pb2.PublishResponse:
        """Reassembles one version from its chunks and commits it; acknowledged once durable."""
        assembler = Assembler(max_total_bytes=self._max_total_bytes, checksum=self._dir is not None)
        for chunk in request_iterator:
            first = assembler.manifest is None
            assembler.add(_parsed(chunk))
            if first:  # refuse a stale version before its data is streamed
                self._check_increases(chunk.manifest)
        assembled = assembler.finish()
        self.commit(assembled)
        m = assembled.manifest
        return params_pb2.PublishResponse(name=m.name, version=m.version, bytes=m.total_bytes)

    @rpc_errors
    def Fetch(self, request: params_pb2.FetchRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The latest version if >= min_version; an empty stream when the caller is current."""
        request = _parsed(request)
        check_name(request.name)
        if request.min_version < 0:
            raise ValueError(f"min_version must be >= 0, got {request.min_version}")
        entry = self._versions.get(request.name)
        if entry is None:
            raise NotFoundError(f"no parameters named {request.name!r} were published")
        if entry.manifest.version >= request.min_version:
            yield from entry.chunks
            self._metrics.bytes_served.labels(request.name).inc(entry.nbytes)

    @rpc_errors
    def Subscribe(self, request: params_pb2.SubscribeRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Every version after ``after_version`` until cancelled; slow subscribers skip to the latest."""
        request = _parsed(request)
        check_name(request.name)
        if request.after_version < -1:
            raise ValueError(f"after_version must be >= -1, got {request.after_version}")
        # Each open stream holds a server thread: cap them so Publish and Fetch always find one.
        with self._subscribers_lock:
            if self._subscribers >= self._max_subscribers:
                raise ResourceExhaustedError(
                    f"{self._subscribers} Subscribe streams are open (at most {self._max_subscribers}); use Fetch"
                )
            self._subscribers += 1
        try:
            last = request.after_version
            while context.is_active() and not self._closed.is_set():
                entry = self._versions.get(request.name)
                if entry is not None and entry.manifest.version > last:
                    yield from entry.chunks
                    self._metrics.bytes_served.labels(request.name).inc(entry.nbytes)
                    last = entry.manifest.version
                else:  # short slices, so cancellation and shutdown are noticed quickly
                    self.store.wait_for(request.name, last + 1, timeout=self._wait_slice)
        finally:
            with self._subscribers_lock:
                self._subscribers -= 1

    @rpc_errors
    def List(self, request: params_pb2.ListRequest, context: grpc.ServicerContext) -> params_pb2.ListResponse:
        """Every stored name with its latest version, size and publish time."""
        _parsed(request)
        response = params_pb2.ListResponse()
        for name, entry in sorted(self._versions.items()):
            response.params.add(
                name=name,
                version=entry.manifest.version,
                total_bytes=entry.manifest.total_bytes,
                num_tensors=len(entry.manifest.tensors),
                published_unix_ms=entry.published_unix_ms,
            )
        return response


def _as_is(data: bytes) -> bytes:
    return data


@dataclasses.dataclass(frozen=True)
class _Malformed:
    """A request whose bytes did not parse (gRPC would answer INTERNAL if the parser raised)."""

    error: str


def _lenient(message_type: type[Message]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except DecodeError as exc:
            return _Malformed(f"malformed {message_type.DESCRIPTOR.name}: {exc}")

    return parse


def _parsed(request: Any) -> Any:
    """``request`` itself, or ``ValueError`` (INVALID_ARGUMENT) if its bytes were malformed."""
    if isinstance(request, _Malformed):
        raise ValueError(request.error)
    return request


def add_to_server(servicer: ParameterServicer, server: grpc.Server) -> None:
    """Registers ``servicer`` like the generated ``add_ParameterServiceServicer_to_server``, except
    that Fetch and Subscribe send pre-serialized chunks (``bytes``) as they are, and malformed
    request bytes reach the methods (as INVALID_ARGUMENT) instead of failing as INTERNAL."""
    handlers = {
        "Publish": grpc.stream_unary_rpc_method_handler(
            servicer.Publish,
            request_deserializer=_lenient(params_pb2.ParamsChunk),
            response_serializer=params_pb2.PublishResponse.SerializeToString,
        ),
        "Fetch": grpc.unary_stream_rpc_method_handler(
            servicer.Fetch, request_deserializer=_lenient(params_pb2.FetchRequest), response_serializer=_as_is
        ),
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            servicer.Subscribe, request_deserializer=_lenient(params_pb2.SubscribeRequest), response_serializer=_as_is
        ),
        "List": grpc.unary_unary_rpc_method_handler(
            servicer.List,
            request_deserializer=_lenient(params_pb2.ListRequest),
            response_serializer=params_pb2.ListResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)

