"""Options every service shares: where it listens, how it finds the cluster, how it is secured.

Each service's ``config.py`` embeds these dataclasses; ``herd serve`` builds
them from flags, a YAML file or ``HERD_*`` environment variables.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse

from herd.config import option


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Where a service listens."""

    host: str = option("127.0.0.1", "address to bind (0.0.0.0 in containers)")
    port: int = option(0, "gRPC port (0 = any free port, reported through Redis)")
    advertise_host: str = option("", "host name others should dial (default: host, or 127.0.0.1 for 0.0.0.0)")
    max_message_mb: int = option(64, "largest gRPC message in MiB, each way")
    grace_seconds: float = option(3.0, "time open streams get to finish on shutdown")
    metrics_port: int = option(0, "port of the Prometheus /metrics endpoint (0 = any free port, -1 = none)")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"server.port must be in [0, 65535], got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            raise ValueError(f"server.metrics_port must be in [0, 65535], or -1 for none, got {self.metrics_port}")
        if not 1 <= self.max_message_mb <= 2047:
            raise ValueError(f"server.max_message_mb must be in [1, 2047], got {self.max_message_mb}")
        if self.grace_seconds < 0:
            raise ValueError(f"server.grace_seconds must be >= 0, got {self.grace_seconds}")

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024

    def address(self, port: int) -> str:
        """What other services dial to reach this one on ``port``."""
        host = self.advertise_host or ("127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host)
        return f"{host}:{port}"

    def metrics_address(self, port: int | None) -> str:
        """What Prometheus scrapes for a ``/metrics`` bound on ``port`` ("" when none is served)."""
        return self.address(port) if port else ""


@dataclasses.dataclass(frozen=True)
class CoordOptions:
    """How a service finds Redis and the other services of its run."""

    redis_url: str = option("", "Redis URL, e.g. redis://:password@host:6379/0 (empty = no coordination)")
    run_id: str = option("default", "run id: every Redis key of the run lives under herd:{run_id}:")
    service_id: str = option("", "this service's id (default: <kind>-<hostname>-<pid>)")
    heartbeat_seconds: float = option(1.0, "seconds between registration refreshes")
    ttl_seconds: float = option(5.0, "a registration expires this long after the last heartbeat")
    replay_address: str = option("", "static replay address host:port (overrides discovery)")
    params_address: str = option("", "static parameter-server address host:port (overrides discovery)")

    def __post_init__(self) -> None:
        _check_redis_url(self.redis_url)
        if not self.run_id or any(c in self.run_id for c in " :{}"):
            raise ValueError(f"coord.run_id must be non-empty without spaces, ':' or braces, got {self.run_id!r}")
        if self.heartbeat_seconds <= 0:
            raise ValueError(f"coord.heartbeat_seconds must be > 0, got {self.heartbeat_seconds}")
        if self.ttl_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"coord.ttl_seconds ({self.ttl_seconds}) must exceed coord.heartbeat_seconds ({self.heartbeat_seconds})"
            )


REDIS_SCHEMES = ("redis", "rediss", "unix")


def _check_redis_url(url: str) -> None:
    """A Redis URL's scheme, and its TLS CA bundle (``rediss://...?ssl_ca_certs=PATH``) if named."""
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"coord.redis_url: scheme must be one of {', '.join(s + '://' for s in REDIS_SCHEMES)}, "
                         f"got {parts.scheme + '://' if parts.scheme else 'none'}")
    for path in urllib.parse.parse_qs(parts.query).get("ssl_ca_certs", []):
        if not os.path.isfile(path):
            raise ValueError(f"coord.redis_url: ssl_ca_certs {path!r} is not a readable file")


@dataclasses.dataclass(frozen=True)
class SecurityOptions:
    """TLS and the shared token, for a service's server and its outgoing channels (all off by default).

    Server side: with ``tls_cert`` + ``tls_key`` the server speaks TLS only; with
    ``tls_client_auth`` it also demands a client certificate signed by ``tls_ca`` (mutual TLS);
    with a token every call but the health service needs ``authorization: Bearer <token>``.
    Client side: a channel uses TLS when ``tls_ca`` or ``tls_cert`` is set (verifying servers
    against ``tls_ca``, else the system roots), presents ``tls_cert`` / ``tls_key`` as its client
    certificate, and sends the token.
    """

    tls_cert: str = option("", "PEM certificate chain of this service (server, and client under mTLS)")
    tls_key: str = option("", "PEM private key of tls_cert")
    tls_ca: str = option("", "PEM CA bundle: clients verify servers with it; with tls_client_auth, servers verify clients")
    tls_client_auth: bool = option(False, "servers require a client certificate signed by tls_ca (mutual TLS)")
    tls_server_name: str = option("", "host name clients expect in the server certificate (default: the dialed host)")
    token_file: str = option("", "file holding the shared token callers must send as 'authorization: Bearer <token>'")
    token: str = dataclasses.field(
        default="", repr=False, metadata={"help": "the shared token itself (HERD_TOKEN; prefer token_file)"}
    )

    def __post_init__(self) -> None:
        for name in ("tls_cert", "tls_key", "tls_ca", "token_file"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ValueError(f"security.{name}: {path!r} is not a readable file")
            if path and not os.access(path, os.R_OK):
                raise ValueError(f"security.{name}: {path!r} is not readable")
        if bool(self.tls_cert) != bool(self.tls_key):
            missing = "tls_key" if self.tls_cert else "tls_cert"
            raise ValueError(f"security.{missing}: required with security.{'tls_cert' if self.tls_key else 'tls_key'}")
        if self.tls_client_auth and not (self.tls_ca and self.tls_cert):
            missing = "tls_ca" if not self.tls_ca else "tls_cert"
            raise ValueError(f"security.{missing}: required by security.tls_client_auth (mutual TLS)")
        if self.token and self.token_file:
            raise ValueError("security.token: give the token or security.token_file, not both")
        if self.token_file:
            _check_token(self._read_token_file(), "security.token_file")
        elif self.token:
            _check_token(self.token, "security.token")

    @property
    def client_tls(self) -> bool:
        """Whether outgoing channels use TLS."""
        return bool(self.tls_ca or self.tls_cert)

    @property
    def server_tls(self) -> bool:
        """Whether the server listens with TLS."""
        return bool(self.tls_cert)

    @property
    def enabled(self) -> bool:
        return self.client_tls or bool(self.token or self.token_file)

    def bearer_token(self) -> str:
        """The shared token ("" = none), read from ``token_file`` when that is set."""
        return self._read_token_file() if self.token_file else self.token

    def _read_token_file(self) -> str:
        try:
            with open(self.token_file, encoding="utf-8") as f:
                return f.read().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"security.token_file: cannot read {self.token_file!r}: {e}") from e

    def read(self, name: str) -> bytes:
        """The bytes of the PEM file in field ``name`` (``tls_cert``, ``tls_key``, ``tls_ca``)."""
        path = getattr(self, name)
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise ValueError(f"security.{name}: cannot read {path!r}: {e.strerror}") from e


MIN_TOKEN_CHARS = 16


def _check_token(token: str, field: str) -> None:
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"{field}: the token must have at least {MIN_TOKEN_CHARS} characters, got {len(token)}")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError(f"{field}: the token must be printable ASCII without spaces")
