"""The local-cluster supervisor restarts crashed services with backoff and stops them in order."""

import sys
import time

from herd.launch.supervisor import ServiceSpec, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]


def test_restarts_a_crashed_service_with_backoff(tmp_path):
    sup = Supervisor([ServiceSpec("crash", "x", CRASHER)], str(tmp_path), min_backoff=0.05, max_backoff=0.2)
    sup.start_all()
    deadline = time.monotonic() + 10
    while sup.restarts()["crash"] < 3 and time.monotonic() < deadline:
        sup.poll()
        time.sleep(0.01)
    assert sup.restarts()["crash"] >= 3
    sup.close()


def test_killed_service_comes_back_and_stop_is_clean(tmp_path):
    sup = Supervisor([ServiceSpec("svc", "x", SLEEPER)], str(tmp_path), min_backoff=0.05)
    sup.start_all()
    first = sup.pid("svc")
    assert first
    sup.children["svc"].process.kill()
    deadline = time.monotonic() + 10
    while (sup.pid("svc") in (None, first)) and time.monotonic() < deadline:
        sup.poll()
        time.sleep(0.02)
    second = sup.pid("svc")
    assert second and second != first
    sup.stop(["svc"], timeout=5)
    assert sup.pid("svc") is None
    sup.poll()  # a stopped service is not restarted
    assert sup.pid("svc") is None
    sup.close()
    assert (tmp_path / "svc.log").exists()


def test_gives_up_on_a_crash_loop(tmp_path):
    import pytest

    from herd.launch.supervisor import ServiceFailed

    sup = Supervisor([ServiceSpec("crash", "x", CRASHER)], str(tmp_path), min_backoff=0.01, max_backoff=0.02,
                     give_up_after=3)
    sup.start_all()
    with pytest.raises(ServiceFailed, match="crash.log"):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sup.poll()
            time.sleep(0.01)
    sup.close()
