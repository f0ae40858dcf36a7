"""Service registry: records with a TTL, heartbeats, discovery, re-registration after Redis restarts."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import pytest
import redis.exceptions as rexc

from herd.coord import Coordinator, ServiceRecord, register_service, resolve_address
from herd.coord.server import free_port
from herd.options import CoordOptions


def wait_until(predicate, timeout: float = 3.0, poll: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


@pytest.fixture
def coord(redis_url: str, run_id: str):
    with Coordinator(redis_url, run_id) as c:
        yield c


def test_registration_visible_with_ttl_and_gone_after_close(coord: Coordinator) -> None:
    reg = coord.register("replay", "replay-0", "127.0.0.1:5000", metrics_address="127.0.0.1:9100",
                         extra={"tables": ["impala"]}, ttl=2.0, heartbeat=0.5)  # fmt: skip
    [rec] = coord.services("replay")
    assert (rec.kind, rec.id, rec.grpc, rec.pid) == ("replay", "replay-0", "127.0.0.1:5000", os.getpid())
    assert rec.metrics == "127.0.0.1:9100"
    assert rec.extra == {"tables": ["impala"]} and rec.host and rec.started_at > 0
    assert 0 < coord.redis.pttl(reg.key) <= 2000
    assert coord.services("actor") == [] and coord.services() == [rec]
    reg.update(metrics="127.0.0.1:9200")
    assert coord.services("replay")[0].metrics == "127.0.0.1:9200"
    with pytest.raises(ValueError):
        reg.update(kind="actor")
    reg.close()
    assert coord.services() == [] and not reg.alive
    reg.close()  # idempotent


def test_heartbeat_keeps_record_alive_past_ttl(coord: Coordinator) -> None:
    with coord.register("actor", "a0", "h:1", ttl=0.5, heartbeat=0.1):
        time.sleep(0.8)
        assert [r.id for r in coord.services("actor")] == ["a0"]


def test_record_expires_after_ttl_when_the_service_dies(redis_url: str, run_id: str, coord: Coordinator) -> None:
    code = (
        "import sys, time\n"
        "from herd.coord import Coordinator\n"
        f"Coordinator({redis_url!r}, {run_id!r}).register('actor', 'doomed', 'h:1', ttl=0.5, heartbeat=0.1)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        assert [r.id for r in coord.services("actor")] == ["doomed"]  # still beating
    finally:
        proc.kill()
        proc.wait()
    t0 = time.monotonic()
    assert wait_until(lambda: coord.services("actor") == [], timeout=2.0)
    assert time.monotonic() - t0 < 1.0  # gone within ~ttl of the last beat


def test_reregisters_after_redis_restart(private_redis, run_id: str, caplog) -> None:
    coord = Coordinator(private_redis.url, run_id)
    reg = coord.register("params", "p0", "h:2", ttl=1.0, heartbeat=0.1)
    coord.set_counters_max(learner_steps=5)  # loads the Lua script into Redis's cache
    private_redis.restart()  # same port, all data (and the script cache) lost
    assert wait_until(lambda: [r.id for r in coord.services("params")] == ["p0"], timeout=1.0)
    assert coord.counters() == {}
    assert coord.set_counters_max(learner_steps=5) == {"learner_steps": 5}  # the learner re-asserts its step
    with caplog.at_level(logging.WARNING, logger="herd.coord.registration"):
        private_redis.kill()
        time.sleep(0.5)  # ~5 failing beats: no exception, one warning
        assert not reg.alive
        private_redis.start()
        assert wait_until(lambda: reg.alive and len(coord.services("params")) == 1, timeout=1.0)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    reg.close()
    coord.close()


def test_register_raises_when_redis_is_unreachable(run_id: str) -> None:
    with Coordinator(f"redis://127.0.0.1:{free_port()}/0", run_id, socket_timeout=0.5) as coord:
        assert coord.ping() is False
        with pytest.raises(rexc.ConnectionError):
            coord.register("replay", "r0", "h:1")


def test_discover_waits_for_a_registration(coord: Coordinator) -> None:
    regs = []
    timer = threading.Timer(0.2, lambda: regs.append(coord.register("replay", "late", "h:7", ttl=2, heartbeat=0.5)))
    timer.start()
    t0 = time.monotonic()
    rec = coord.discover("replay", timeout=5.0, poll=0.02)
    assert isinstance(rec, ServiceRecord) and rec.grpc == "h:7" and time.monotonic() - t0 >= 0.15
    timer.join()
    regs[0].close()


def test_discover_prefers_the_newest_registration(coord: Coordinator) -> None:
    with coord.register("replay", "old", "h:1"), coord.register("replay", "new", "h:2"):
        assert coord.discover("replay", timeout=1).id == "new"


def test_discover_timeout_names_kind_and_run(coord: Coordinator, run_id: str) -> None:
    with pytest.raises(TimeoutError, match=rf"'params'.*'{run_id}'"):
        coord.discover("params", timeout=0.2)
    with pytest.raises(ValueError, match="unknown service kind"):
        coord.discover("param", timeout=0.2)


def test_discover_timeout_reports_an_unreachable_redis(run_id: str) -> None:
    with Coordinator(f"redis://127.0.0.1:{free_port()}/0", run_id, socket_timeout=0.5) as coord:
        with pytest.raises(TimeoutError, match="unreachable"):
            coord.discover("replay", timeout=0.3)


def test_register_service_and_resolve_address(redis_url: str, run_id: str, coord: Coordinator) -> None:
    assert register_service(CoordOptions(), "replay", "h:1") is None
    opts = CoordOptions(redis_url=redis_url, run_id=run_id, heartbeat_seconds=0.2, ttl_seconds=1.0)
    reg = register_service(opts, "replay", "h:5000", "h:9100")
    assert reg is not None and reg.record.id.startswith("replay-") and reg.record.id.endswith(f"-{os.getpid()}")
    assert resolve_address(opts, "replay", timeout=1) == "h:5000"
    static = CoordOptions(redis_url=redis_url, run_id=run_id, replay_address="static:1")
    assert resolve_address(static, "replay", timeout=0) == "static:1"  # static wins over discovery
    reg.close()
    assert coord.services() == []
    with pytest.raises(ValueError, match="replay_address.*redis_url"):
        resolve_address(CoordOptions(), "replay", timeout=0)
    with pytest.raises(TimeoutError):
        resolve_address(opts, "params", timeout=0.1)
