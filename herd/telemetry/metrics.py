"""Every Prometheus metric of Herd, in one module (DESIGN.md §6; listed in docs/metrics.md).

Where it sits: each service builds one registry (:func:`new_registry`) and the
metric set of its kind on it (:class:`ActorMetrics`, :class:`LearnerMetrics`,
:class:`ReplayMetrics`, :class:`ParamServerMetrics`); ``herd.wire.server`` adds
:class:`GrpcServerMetrics` through one interceptor and serves the registry on
``/metrics`` (:func:`serve_metrics`). A registry per service, not the global
default, so several services in one process (tests, ``herd train``) never
collide and each endpoint shows exactly its own service.

Cost: services update metrics once per unroll, batch, call or inference step,
never per item or env step. Replay and parameter-server state (table sizes,
insert/sample counts, rate-limiter waits, versions) is read when Prometheus
scrapes, so the insert path pays nothing. The Grafana dashboards and recording
rules in ``deploy/`` use exactly the names below (a test checks it).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Iterable, Mapping, Optional, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, Summary
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "herd_"

# -- names (the dashboards and rules refer to these) ------------------------------------
# actors
ENV_STEPS = "herd_env_steps_total"
EPISODES = "herd_episodes_total"
EPISODE_RETURN = "herd_episode_return"
EPISODE_RETURN_MEAN = "herd_episode_return_mean100"
INFERENCE_SECONDS = "herd_actor_inference_seconds"
ACTOR_UNROLLS = "herd_actor_unrolls_total"
ACTOR_PARAM_VERSION = "herd_actor_param_version"
ACTOR_POLICY_LAG = "herd_actor_policy_lag"
ACTOR_DEVICE_INFO = "herd_actor_device_info"
# learner
LEARNER_STEPS = "herd_learner_steps_total"
LEARNER_FRAMES = "herd_learner_frames_total"
LEARNER_FPS = "herd_learner_frames_per_second"
BATCH_WAIT_SECONDS = "herd_learner_batch_wait_seconds"
UPDATE_SECONDS = "herd_learner_update_seconds"
LOSS = "herd_learner_loss"
LEARNER_METRIC = "herd_learner_metric"
GRAD_NORM = "herd_learner_grad_norm"
LEARNING_RATE = "herd_learner_learning_rate"
LEARNER_PARAM_VERSION = "herd_learner_param_version"
LEARNER_POLICY_LAG = "herd_learner_policy_lag"
LEARNER_DEVICE_INFO = "herd_learner_device_info"
# replay
REPLAY_ITEMS = "herd_replay_table_items"
REPLAY_MAX_ITEMS = "herd_replay_table_max_items"
REPLAY_INSERTS = "herd_replay_inserts_total"
REPLAY_SAMPLES = "herd_replay_samples_total"
REPLAY_BLOCKED_SECONDS = "herd_replay_rate_limiter_blocked_seconds_total"
# parameter server
PARAMS_VERSION = "herd_params_version"
PARAMS_BYTES_SERVED = "herd_params_bytes_served_total"
# gRPC, every service
GRPC_HANDLED = "herd_grpc_server_handled_total"
GRPC_HANDLING_SECONDS = "herd_grpc_server_handling_seconds"
# process (prometheus_client's ProcessCollector under our prefix)
PROCESS_CPU_SECONDS = "herd_process_cpu_seconds_total"
PROCESS_RESIDENT_BYTES = "herd_process_resident_memory_bytes"

"""An ``Updater.update`` metric ``<term>_loss`` is exported as :data:`LOSS` with label ``term=<term>``
(IMPALA: total, pg, baseline, entropy; DQN: total, q); every other scalar the updater returns,
except those with gauges of their own, as :data:`LEARNER_METRIC` with label ``name``."""
_OWN_GAUGES = frozenset({"grad_norm", "learning_rate", "batch_wait_seconds", "policy_lag"})


def loss_term(key: str) -> str | None:
    """The ``term`` label of metric ``key``, or None when it is not a loss."""
    return key[: -len("_loss")] if key.endswith("_loss") and len(key) > len("_loss") else None

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
RPC_BUCKETS = LATENCY_BUCKETS + (30, 60, 300)


def new_registry() -> CollectorRegistry:
    """A service's own registry, with its process's CPU and memory as ``herd_process_*``."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(namespace="herd", registry=registry)
    return registry


class ActorMetrics:
    """An actor's metrics; ``record_unroll`` once per unroll, ``inference`` per batched inference step."""

    def __init__(self, registry: CollectorRegistry, task: str) -> None:
        self.task = task
        self.env_steps = Counter(ENV_STEPS, "Environment steps taken (resets excluded)", ["task"],
                                 registry=registry).labels(task)
        self.episodes = Counter(EPISODES, "Episodes finished", ["task"], registry=registry).labels(task)
        # A summary (_sum, _count: the mean over any window), not a histogram: returns may be negative,
        # and a histogram with negative buckets exposes no _sum.
        self.episode_return = Summary(EPISODE_RETURN, "Undiscounted return of each finished episode",
                                      ["task"], registry=registry).labels(task)
        self.episode_return_mean = Gauge(EPISODE_RETURN_MEAN, "Mean return of this actor's last 100 episodes",
                                         ["task"], registry=registry).labels(task)
        self.inference = Histogram(INFERENCE_SECONDS, "Latency of one batched policy step (all envs of the actor)",
                                   buckets=LATENCY_BUCKETS, registry=registry)
        self.unrolls = Counter(ACTOR_UNROLLS, "Unrolls written to replay", registry=registry)
        self.param_version = Gauge(ACTOR_PARAM_VERSION, "Version of the weights the actor acts with",
                                   registry=registry)
        self.policy_lag = Gauge(ACTOR_POLICY_LAG, "Versions the actor's weights were behind the parameter "
                                "server at its last pull", registry=registry)
        self.device = Gauge(ACTOR_DEVICE_INFO, "1, labelled with the torch device the actor's policy runs on",
                            ["requested", "device", "name"], registry=registry)

    def record_device(self, requested: str, device: str, name: str) -> None:
        """Once at start: the actor_device as set (e.g. auto) and as resolved (e.g. cpu)."""
        self.device.labels(requested, device, name).set(1)

    def record_unroll(self, env_steps: int, returns: Sequence[float], mean100: float, version: int) -> None:
        """One unroll's worth: its env steps and the returns of the episodes that ended in it."""
        self.env_steps.inc(env_steps)
        self.unrolls.inc()
        if returns:
            self.episodes.inc(len(returns))
            for r in returns:  # per episode, not per env step
                self.episode_return.observe(r)
            self.episode_return_mean.set(mean100)
        self.param_version.set(version)


class LearnerMetrics:
    """The learner's metrics; ``record_step`` once per gradient step."""

    def __init__(self, registry: CollectorRegistry, *, fps_window: float = 1.0) -> None:
        self.steps = Counter(LEARNER_STEPS, "Gradient steps (learner updates)", registry=registry)
        self.frames = Counter(LEARNER_FRAMES, "Environment frames consumed by updates (T x B per step)",
                              registry=registry)
        self.fps = Gauge(LEARNER_FPS, "Frames consumed per second, over about the last second", registry=registry)
        self.batch_wait = Histogram(BATCH_WAIT_SECONDS, "Time a step waited for its batch",
                                    buckets=LATENCY_BUCKETS, registry=registry)
        self.update_time = Histogram(UPDATE_SECONDS, "Time of one update (loss, backward, optimizer step)",
                                     buckets=LATENCY_BUCKETS, registry=registry)
        self.loss = Gauge(LOSS, "Loss terms of the last update, as the agent's updater reports them", ["term"],
                          registry=registry)
        self.other = Gauge(LEARNER_METRIC, "Other scalars the agent's updater reports for its last update",
                           ["name"], registry=registry)
        self.grad_norm = Gauge(GRAD_NORM, "Global gradient norm of the last update, before clipping",
                               registry=registry)
        self.learning_rate = Gauge(LEARNING_RATE, "Learning rate of the last update", registry=registry)
        self.param_version = Gauge(LEARNER_PARAM_VERSION, "Last parameter version the learner published",
                                   registry=registry)
        self.policy_lag = Gauge(LEARNER_POLICY_LAG, "Mean policy lag of the last batch: published version "
                                "minus the version that acted", registry=registry)
        self.device = Gauge(LEARNER_DEVICE_INFO, "1, labelled with the torch device the learner's updates run on",
                            ["requested", "device", "name"], registry=registry)
        self._fps_window = fps_window
        self._fps_mark = (time.monotonic(), 0.0)
        self._frames = 0.0

    def record_device(self, requested: str, device: str, name: str) -> None:
        """Once at start: the learner_device as set (e.g. auto) and as resolved (e.g. cuda:0)."""
        self.device.labels(requested, device, name).set(1)

    def record_step(self, metrics: Mapping[str, float], frames: int, published_version: int,
                    update_seconds: Optional[float] = None) -> None:
        """One gradient step: ``metrics`` as ``Learner.step`` returned them."""
        self.steps.inc()
        self.frames.inc(frames)
        self._frames += frames
        now = time.monotonic()
        t0, f0 = self._fps_mark
        if now - t0 >= self._fps_window:
            self.fps.set((self._frames - f0) / (now - t0))
            self._fps_mark = (now, self._frames)
        for key, value in metrics.items():
            term = loss_term(key)
            if term is not None:
                self.loss.labels(term).set(value)
            elif key not in _OWN_GAUGES:
                self.other.labels(key).set(value)
        if "grad_norm" in metrics:
            self.grad_norm.set(metrics["grad_norm"])
        if "learning_rate" in metrics:
            self.learning_rate.set(metrics["learning_rate"])
        if "batch_wait_seconds" in metrics:
            self.batch_wait.observe(metrics["batch_wait_seconds"])
        if update_seconds is not None:
            self.update_time.observe(update_seconds)
        if "policy_lag" in metrics:
            self.policy_lag.set(metrics["policy_lag"])
        self.param_version.set(published_version)


@dataclasses.dataclass(frozen=True)
class TableSnapshot:
    """What the replay exporter reads of one table at scrape time (a subset of ``Table.info()``)."""

    name: str
    size: int
    max_size: int
    num_inserts: int
    num_samples: int
    insert_blocked_seconds: float
    sample_blocked_seconds: float


class ReplayMetrics(Collector):
    """Replay tables, read when scraped: items, capacity, inserts, samples, rate-limiter waits.

    ``tables()`` returns the current snapshots (e.g. ``[t.info() for t in tables]``: any object
    with the fields of :class:`TableSnapshot`). Nothing is counted on the insert or sample path.
    """

    def __init__(self, registry: CollectorRegistry, tables: Callable[[], Iterable[TableSnapshot]]) -> None:
        self._tables = tables
        registry.register(self)

    def describe(self) -> list[Metric]:
        return self._families()

    def collect(self) -> list[Metric]:
        families = self._families()
        items, max_items, inserts, samples, blocked = families
        for t in self._tables():
            items.add_metric([t.name], t.size)
            max_items.add_metric([t.name], t.max_size)
            inserts.add_metric([t.name], t.num_inserts)
            samples.add_metric([t.name], t.num_samples)
            blocked.add_metric([t.name, "insert"], t.insert_blocked_seconds)
            blocked.add_metric([t.name, "sample"], t.sample_blocked_seconds)
        return families

    @staticmethod
    def _families() -> list[Metric]:
        return [
            GaugeMetricFamily(REPLAY_ITEMS, "Items in the table", labels=["table"]),
            GaugeMetricFamily(REPLAY_MAX_ITEMS, "Capacity of the table (max_size)", labels=["table"]),
            CounterMetricFamily(REPLAY_INSERTS, "Items inserted into the table", labels=["table"]),
            CounterMetricFamily(REPLAY_SAMPLES, "Items sampled from the table (B per batch)", labels=["table"]),
            CounterMetricFamily(REPLAY_BLOCKED_SECONDS, "Time callers waited on the table's rate limiter",
                                labels=["table", "side"]),
        ]


class ParamServerMetrics(Collector):
    """The parameter server: latest version per name (read when scraped) and bytes served."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._versions: Callable[[], Mapping[str, int]] = dict
        self.bytes_served = Counter(PARAMS_BYTES_SERVED, "Bytes of parameters sent by Fetch and Subscribe",
                                    ["name"], registry=registry)
        registry.register(self)

    def watch(self, versions: Callable[[], Mapping[str, int]]) -> None:
        """Reports ``versions()`` (name -> latest version) at every scrape."""
        self._versions = versions

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(PARAMS_VERSION, "Latest stored version per parameter name", labels=["name"])]

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily(PARAMS_VERSION, "Latest stored version per parameter name", labels=["name"])
        for name, version in self._versions().items():
            family.add_metric([name], version)
        return [family]


class GrpcServerMetrics:
    """Per-method request counts by final status code, and latency, of one gRPC server.

    Labels follow go-grpc-prometheus: ``grpc_service`` (``herd.v1.ReplayService``), ``grpc_method``
    (``Insert``), ``grpc_type`` (unary, client_stream, server_stream, bidi_stream), ``grpc_code``
    (``OK``, ``INVALID_ARGUMENT``, ...). A stream's latency is the stream's whole duration.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_service", "grpc_method", "grpc_type"]
        self.handled = Counter(GRPC_HANDLED, "RPCs completed, by final status code", labels + ["grpc_code"],
                               registry=registry)
        self.handling = Histogram(GRPC_HANDLING_SECONDS, "Time from the start of an RPC to its final status",
                                  labels, buckets=RPC_BUCKETS, registry=registry)
        self._children: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}
        self._lock = threading.Lock()

    def record(self, service: str, method: str, kind: str, code: str, seconds: float) -> None:
        key = (service, method, kind, code)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: cache the pair
            with self._lock:
                children = self._children.setdefault(
                    key, (self.handled.labels(service, method, kind, code), self.handling.labels(service, method, kind))
                )
        children[0].inc()
        children[1].observe(seconds)


class MetricsEndpoint:
    """A running ``/metrics`` HTTP server (``serve_metrics``); ``close()`` stops it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be in [0, 65535], got {port}")
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as e:
            raise OSError(f"cannot serve /metrics on {host}:{port}: {e}") from e
        self.host = host
        self.port = int(self._httpd.server_address[1])

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsEndpoint:
    """Serves ``registry`` at ``http://host:port/metrics`` from a daemon thread (port 0 = any free one)."""
    return MetricsEndpoint(registry, host, port)
