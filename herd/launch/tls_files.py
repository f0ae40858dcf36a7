"""Throwaway credentials for ``herd up --secure`` (and tests): a CA, certificates and a token.

Where it sits: ``herd up --secure`` writes them into ``<run dir>/secrets/`` and hands every
``herd serve`` the paths (``--tls-cert``, ``--tls-key``, ``--tls-ca``, ``--tls-client-auth``,
``--token-file``); ``herd status --run-dir`` finds them there. The CA key never leaves
memory; private keys and the token are written ``0600`` in a ``0700`` directory.

Certificates are ECDSA P-256, valid for 30 days, for ``localhost`` / ``127.0.0.1`` / ``::1``
(the cluster listens on loopback). The service certificate is good for both TLS roles,
because every service is also a client of the others; the operator certificate only for
the client role (``herd status``, tests, tools).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import secrets
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclasses.dataclass(frozen=True)
class SecureFiles:
    """Paths of one generated set (all PEM, the token a text file)."""

    directory: str
    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    token_file: str

    def serve_flags(self) -> list[str]:
        """The ``herd serve`` flags that run a service with mutual TLS and the token."""
        return ["--tls-cert", self.server_cert, "--tls-key", self.server_key, "--tls-ca", self.ca_cert,
                "--tls-client-auth", "--token-file", self.token_file]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "herd"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))


def make_ca(common_name: str = "herd throwaway CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA: ``(private key, certificate)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    names: Sequence[str] = LOOPBACK_NAMES,
    server: bool = True,
    client: bool = True,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate signed by the CA for ``names``, usable as TLS server and/or client."""
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    cert = (_builder(_name(common_name), ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(_san(names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # also when the file already existed with looser permissions
        os.write(fd, data)
    finally:
        os.close(fd)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_secure_files(directory: str, *, names: Sequence[str] = LOOPBACK_NAMES) -> SecureFiles:
    """Generates a CA, a service and an operator certificate and a token into ``directory`` (0700)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_key, ca = make_ca()
    server_key, server = issue(ca_key, ca, "herd service", names=names)
    client_key, client = issue(ca_key, ca, "herd operator", names=names, server=False)
    files = SecureFiles(
        directory=directory,
        ca_cert=os.path.join(directory, "ca.pem"),
        server_cert=os.path.join(directory, "service.pem"),
        server_key=os.path.join(directory, "service.key"),
        client_cert=os.path.join(directory, "operator.pem"),
        client_key=os.path.join(directory, "operator.key"),
        token_file=os.path.join(directory, "token"),
    )
    pem = serialization.Encoding.PEM
    _write(files.ca_cert, ca.public_bytes(pem), 0o644)
    _write(files.server_cert, server.public_bytes(pem), 0o644)
    _write(files.server_key, _pem_key(server_key), 0o600)
    _write(files.client_cert, client.public_bytes(pem), 0o644)
    _write(files.client_key, _pem_key(client_key), 0o600)
    _write(files.token_file, (secrets.token_urlsafe(32) + "\n").encode(), 0o600)
    return files


def load_secure_files(directory: str) -> SecureFiles:
    """The paths of a set written by :func:`write_secure_files` (existence is checked by ``SecurityOptions``)."""
    join = lambda name: os.path.join(directory, name)  # noqa: E731
    return SecureFiles(directory, join("ca.pem"), join("service.pem"), join("service.key"),
                       join("operator.pem"), join("operator.key"), join("token"))
