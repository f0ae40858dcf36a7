"""Redis over TLS (``rediss://``, CA in the URL) with a password, against a real TLS redis-server."""

from __future__ import annotations

import subprocess
import time
import urllib.parse

import pytest
import redis.exceptions as rexc

from herd.coord import Coordinator
from herd.coord.server import LocalRedis, find_redis_server, free_port
from herd.launch.tls_files import write_secure_files
from herd.options import CoordOptions

PASSWORD = 'pa"ss\\word'  # a quote and a backslash: LocalRedis passes it through redis.conf syntax


def _tls_supported() -> bool:
    out = subprocess.run([find_redis_server(), "--port", "0", "--tls-port", str(free_port())],
                         capture_output=True, text=True, timeout=10)
    # Built with TLS: it starts configuring TLS and fails for want of certificates.
    return "configure tls" in (out.stdout + out.stderr).lower()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    if not _tls_supported():
        pytest.skip("redis-server built without TLS")
    files = write_secure_files(str(tmp_path_factory.mktemp("redis") / "secrets"))
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "-", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", files.server_cert, "--tls-key-file", files.server_key,
         "--tls-ca-cert-file", files.ca_cert, "--tls-auth-clients", "optional", "--save", "", "--appendonly", "no"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(b'requirepass "secret-pw"\n')
    proc.stdin.close()
    url = f"rediss://:secret-pw@127.0.0.1:{port}/0?ssl_ca_certs={urllib.parse.quote(files.ca_cert)}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Coordinator(url, "probe") as c:
            if c.ping():
                break
        time.sleep(0.05)
    yield url, port, files
    proc.terminate()
    proc.wait(10)


def test_rediss_url_with_ca_and_password(tls_redis, run_id):
    url, _, _ = tls_redis
    CoordOptions(redis_url=url)  # validates: scheme, CA file exists
    with Coordinator(url, run_id) as coord:
        assert coord.ping()
        coord.incr(env_steps=5)
        assert coord.counters()["env_steps"] == 5
        assert "secret-pw" not in coord.url


def test_rediss_without_the_ca_is_refused(tls_redis, run_id):
    _, port, _ = tls_redis
    with Coordinator(f"rediss://:secret-pw@127.0.0.1:{port}/0", run_id) as coord:
        assert not coord.ping()  # certificate verification fails: unreachable, not trusted


def test_rediss_wrong_password(tls_redis, run_id):
    url, _, _ = tls_redis
    with Coordinator(url.replace("secret-pw", "wrong-pw"), run_id) as coord:
        with pytest.raises(rexc.AuthenticationError, match="refused the credentials"):
            coord.ping()


def test_plain_redis_to_tls_port_fails(tls_redis, run_id):
    _, port, _ = tls_redis
    with Coordinator(f"redis://:secret-pw@127.0.0.1:{port}/0", run_id, socket_timeout=1.0) as coord:
        assert not coord.ping()


def test_local_redis_password_with_special_characters(run_id):
    with LocalRedis(password=PASSWORD) as server:
        with Coordinator(server.url, run_id) as coord:
            assert coord.ping()
        with Coordinator(server.url.replace("word", "wort"), run_id) as coord:
            with pytest.raises(rexc.AuthenticationError):
                coord.ping()


@pytest.mark.parametrize(
    "url, match",
    [
        ("http://127.0.0.1:6379/0", "scheme must be one of"),
        ("127.0.0.1:6379", "scheme must be one of"),
        ("rediss://127.0.0.1:6380/0?ssl_ca_certs=/no/such/ca.pem", "ssl_ca_certs"),
    ],
)
def test_bad_redis_urls_named(url, match):
    with pytest.raises(ValueError, match=match):
        CoordOptions(redis_url=url)


def test_rediss_client_certificate_in_the_url(tls_redis, run_id):
    """A Redis that demands client certificates (tls-auth-clients yes): ssl_certfile / ssl_keyfile in the URL."""
    _, _, files = tls_redis
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", files.server_cert, "--tls-key-file", files.server_key,
         "--tls-ca-cert-file", files.ca_cert, "--tls-auth-clients", "yes", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={urllib.parse.quote(files.ca_cert)}"
        with_cert = f"{base}&ssl_certfile={urllib.parse.quote(files.client_cert)}" \
                    f"&ssl_keyfile={urllib.parse.quote(files.client_key)}"
        deadline = time.monotonic() + 10
        ok = False
        while not ok and time.monotonic() < deadline:
            with Coordinator(with_cert, run_id) as coord:
                ok = coord.ping()
            time.sleep(0.05)
        assert ok
        with Coordinator(base, run_id) as coord:
            assert not coord.ping()
    finally:
        proc.terminate()
        proc.wait(10)
