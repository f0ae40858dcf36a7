"""How the parameter server starts: ``python -m param_server.main`` (what its container runs).

Reloads the latest persisted version of each name from ``data_dir``, serves
``herd.v1.ParameterService`` (plus health and reflection), registers its address in
Redis as ``params`` when a Redis URL is set, and on SIGTERM/SIGINT (or ``stop_event``)
ends subscriptions, drains, and deregisters.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Callable, Optional, Sequence

from herd.options import CoordOptions, ServerOptions
from herd.telemetry.metrics import ParamServerMetrics, new_registry
from herd.serving import start_service
from herd.wire.server import wait_for_termination
from param_server.config import MiB, ParamServerConfig
from param_server.servicer import SERVICE_NAME, ParameterServicer, add_to_server

log = logging.getLogger(__name__)


def serve(
    config: ParamServerConfig,
    *,
    stop_event: Optional[threading.Event] = None,
    on_ready: Optional[Callable[[int], None]] = None,
) -> None:
    """Serves until ``stop_event`` is set or SIGTERM/SIGINT arrives; ``on_ready(port)`` once bound."""
    registry = new_registry()
    servicer = ParameterServicer.from_config(config, metrics=ParamServerMetrics(registry))
    running, registration = start_service(
        "params", lambda server: add_to_server(servicer, server), [SERVICE_NAME],
        config.server, config.coord, config.security, registry=registry, max_workers=config.server_threads,
    )
    stop = stop_event or threading.Event()
    # Subscribe streams run until cancelled: end them as soon as the stop is requested, so
    # the shutdown grace period is not spent waiting for them.
    threading.Thread(target=lambda: (stop.wait(), servicer.end_streams()), name="params-stop", daemon=True).start()
    log.info("params serving", extra={"port": running.port, "metrics_port": running.metrics_port,
                                      "data_dir": config.data_dir,
                                      "names": len(servicer.store.versions())})
    if on_ready is not None:
        on_ready(running.port)

    def deregister() -> None:
        servicer.close()  # writes versions the background persister has not saved yet
        if registration is not None:
            registration.close()

    wait_for_termination(running, grace=config.server.grace_seconds, on_stop=deregister, stop_event=stop)



def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m param_server.main --port 0 --data-dir D`` (``herd serve params`` offers more)."""
    parser = argparse.ArgumentParser(prog="param_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=0, help="gRPC port (0 = any free port)")
    parser.add_argument("--data-dir", default="", help="persist the latest version of each name here")
    parser.add_argument("--persist-every-seconds", type=float, default=1.0,
                        help="0: persist before acknowledging each publish; > 0: in the background this often")
    parser.add_argument("--redis-url", default="", help="Redis URL for registration (empty = none)")
    parser.add_argument("--run-id", default="default", help="run id of the Redis keys")
    parser.add_argument("--max-total-mb", type=int, default=2048, help="largest parameter set, MiB")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    from herd.telemetry.logs import setup_json_logging

    setup_json_logging("param_server", args.log_level)
    try:
        config = ParamServerConfig(
            server=ServerOptions(host=args.host, port=args.port),
            coord=CoordOptions(redis_url=args.redis_url, run_id=args.run_id),
            data_dir=args.data_dir,
            max_total_bytes=args.max_total_mb * MiB,
            persist_every_seconds=args.persist_every_seconds,
        )
    except ValueError as e:
        parser.error(str(e))
    serve(config)


if __name__ == "__main__":
    main()
