"""How the replay server starts: ``serve(config)`` (``herd serve replay``) or ``python -m replay_service.main``.

Builds the configured tables (each restored as its ``durability`` allows: from
``checkpoint_dir/<table>.npz`` and, for ``wal``, its log; corrupt files are logged, moved aside
and skipped -- see ``replay_service.recovery``), serves ``herd.v1.ReplayService``
(plus health and reflection), registers its address in Redis as ``replay`` when a Redis URL is
set, checkpoints every ``checkpoint_every_seconds``, and on SIGTERM/SIGINT (or ``stop_event``)
ends its streams, drains, closes the tables, writes a final checkpoint, closes the logs and deregisters.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
from typing import Callable, Optional, Sequence

from herd.options import CoordOptions, ServerOptions
from herd.telemetry.metrics import ReplayMetrics, new_registry
from herd.serving import start_service
from herd.wire.server import wait_for_termination
from replay_service.config import DURABILITY, ReplayServiceConfig, TableConfig
from replay_service.recovery import open_table
from replay_service.servicer import SERVICE_NAME, ReplayServicer, add_to_server
from replay_service.table import Table

log = logging.getLogger("herd.replay")


def build_tables(config: ReplayServiceConfig) -> dict[str, Table]:
    """The configured tables, each restored as its ``durability`` allows (``replay_service.recovery``)."""
    return {t.name: open_table(t, config.checkpoint_dir, seed=config.seed + i) for i, t in enumerate(config.tables)}


def serve(
    config: ReplayServiceConfig,
    *,
    stop_event: Optional[threading.Event] = None,
    on_ready: Optional[Callable[[int], None]] = None,
) -> None:
    """Serves until ``stop_event`` is set or SIGTERM/SIGINT arrives; ``on_ready(port)`` once bound."""
    tables = build_tables(config)
    checkpointed = [t.name for t in config.tables if t.durability != "none"]
    servicer = ReplayServicer(tables, checkpoint_dir=config.checkpoint_dir, checkpointed=checkpointed,
                              max_message_bytes=config.server.max_message_bytes)
    registry = new_registry()
    ReplayMetrics(registry, lambda: [table.info() for table in tables.values()])  # read when scraped
    running, registration = start_service(
        "replay", lambda server: add_to_server(servicer, server), [SERVICE_NAME],
        config.server, config.coord, config.security, registry=registry, max_workers=config.max_concurrent_calls,
    )
    stop = stop_event or threading.Event()
    # Insert and Sample streams run until cancelled: end them as soon as the stop is requested,
    # so clients reconnect elsewhere and the grace period is not spent waiting for them.
    threading.Thread(target=lambda: (stop.wait(), servicer.stop()), name="replay-stop", daemon=True).start()
    periodic: Optional[threading.Thread] = None
    if config.checkpoint_dir and config.checkpoint_every_seconds > 0:
        periodic = threading.Thread(target=_checkpoint_every, args=(servicer, config.checkpoint_every_seconds, stop),
                                    name="replay-checkpoint", daemon=True)
        periodic.start()
    log.info("replay serving", extra={"port": running.port, "metrics_port": running.metrics_port,
                                      "tables": ",".join(tables),
                                      "checkpoint_dir": config.checkpoint_dir})
    if on_ready is not None:
        on_ready(running.port)

    def on_stop() -> None:
        try:
            for table in tables.values():
                table.close()  # wakes handlers still blocked on a rate limiter
            if periodic is not None:
                periodic.join()
            if config.checkpoint_dir and checkpointed:
                path = servicer.checkpoint()  # closed tables still checkpoint: nothing writes any more
                log.info("final checkpoint written", extra={"path": path})
        finally:
            for table in tables.values():
                if table.journal is not None:
                    table.journal.close()
            if registration is not None:
                registration.close()

    wait_for_termination(running, grace=config.server.grace_seconds, on_stop=on_stop, stop_event=stop)


def _checkpoint_every(servicer: ReplayServicer, seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds):
        try:
            path = servicer.checkpoint()
            log.info("periodic checkpoint written", extra={"path": path})
        except Exception:  # noqa: BLE001 - e.g. disk full: keep serving, try again next time
            log.exception("periodic checkpoint failed")



def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m replay_service.main --port 0 --checkpoint-dir D`` (``herd serve replay`` offers more)."""
    parser = argparse.ArgumentParser(prog="replay_service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=0, help="gRPC port (0 = any free port)")
    parser.add_argument("--table", default="trajectories", help="name of the one queue table")
    parser.add_argument("--queue-size", type=int, default=64, help="items the queue table holds")
    parser.add_argument("--checkpoint-dir", default="", help="checkpoint tables here and restore on start")
    parser.add_argument("--checkpoint-every", type=float, default=0.0, help="seconds between checkpoints (0 = none)")
    parser.add_argument("--durability", default="checkpoint", choices=DURABILITY,
                        help="none, checkpoint, or wal (acked inserts fsynced to a log; needs --checkpoint-every)")
    parser.add_argument("--wal-fsync-interval-ms", type=float, default=10.0,
                        help="wal: inserts within this interval share one fsync")
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest gRPC message, MiB")
    parser.add_argument("--redis-url", default="", help="Redis URL for registration (empty = none)")
    parser.add_argument("--run-id", default="default", help="run id of the Redis keys")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random selectors")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    from herd.telemetry.logs import setup_json_logging

    setup_json_logging("replay", args.log_level)
    try:
        config = ReplayServiceConfig(
            server=ServerOptions(host=args.host, port=args.port, max_message_mb=args.max_message_mb),
            coord=CoordOptions(redis_url=args.redis_url, run_id=args.run_id),
            tables=(dataclasses.replace(TableConfig.queue(args.table, args.queue_size), durability=args.durability,
                                        wal_fsync_interval_ms=args.wal_fsync_interval_ms),),
            checkpoint_dir=args.checkpoint_dir,
            checkpoint_every_seconds=args.checkpoint_every,
            seed=args.seed,
        )
    except ValueError as e:
        parser.error(str(e))
    serve(config)


if __name__ == "__main__":
    main()
