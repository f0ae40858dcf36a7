"""TLS, mutual TLS and the shared token on real servers over loopback gRPC.

The replay and parameter servers run their real ``serve`` (as ``herd serve`` does) with a
``SecurityOptions`` built from throwaway files made by ``herd.launch.tls_files``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from herd.launch.tls_files import make_ca, write_secure_files
from herd.options import SecurityOptions, ServerOptions
from herd.testing.servers import ServiceThread
from herd.v1 import params_pb2, params_pb2_grpc, replay_pb2, replay_pb2_grpc
from herd.wire.channel import make_aio_channel, make_channel
from herd.wire.health import check_health
from herd.wire.replay_codec import encode_insert_request
from param_server.client import ParamClient
from param_server.config import ParamServerConfig
from param_server.main import serve as serve_params
from replay_service.client import ReplayClient
from replay_service.config import ReplayServiceConfig, TableConfig
from replay_service.main import serve as serve_replay

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_secure_files(str(tmp_path_factory.mktemp("secrets") / "secrets"))


@pytest.fixture(scope="module")
def server_security(files) -> SecurityOptions:
    return SecurityOptions(tls_cert=files.server_cert, tls_key=files.server_key, tls_ca=files.ca_cert,
                           tls_client_auth=True, token_file=files.token_file)


@pytest.fixture(scope="module")
def operator(files) -> SecurityOptions:
    """What an operator's tool holds: its client certificate, the CA and the token."""
    return SecurityOptions(tls_cert=files.client_cert, tls_key=files.client_key, tls_ca=files.ca_cert,
                           token_file=files.token_file)


@pytest.fixture(scope="module")
def replay(server_security):
    config = ReplayServiceConfig(server=ServerOptions(grace_seconds=0.5), security=server_security,
                                 tables=(TableConfig.uniform_replay("t", 100),))
    server = ServiceThread(serve_replay, config, name="secure replay")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def params(server_security):
    config = ParamServerConfig(server=ServerOptions(grace_seconds=0.5), security=server_security)
    server = ServiceThread(serve_params, config, name="secure params")
    yield server
    server.stop()


def _info_code(address: str, security: SecurityOptions | None, **channel) -> grpc.StatusCode:
    with make_channel(address, retry=False, security=security, **channel) as ch:
        try:
            replay_pb2_grpc.ReplayServiceStub(ch).Info(replay_pb2.InfoRequest(), timeout=5)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def _items():
    return {"obs": np.arange(6, dtype=np.float32).reshape(3, 1, 2)}


# ------------------------------------------------------------------ the right credentials


def test_right_credentials_work_for_every_call_shape(replay, params, operator):
    with ReplayClient(replay.address, security=operator) as client:
        table = client.table("t")
        keys = table.insert(_items(), timeout=5)  # Insert: stream-stream
        assert len(keys) == 1
        batch = table.sample(1, timeout=5)  # Sample: unary-stream
        assert batch.data["obs"].shape == (3, 1, 2)
        assert client.info()[0].size >= 1  # Info: unary
    with ParamClient(params.address, security=operator, retry_seconds=0) as client:
        client.publish("policy", 1, {"w": np.ones(3, np.float32)})  # Publish: stream-unary
        got = client.fetch("policy")
        assert got is not None and got.version == 1


def test_aio_channel_sends_the_token(replay, operator):
    async def info() -> int:
        async with make_aio_channel(replay.address, security=operator) as ch:
            response = await replay_pb2_grpc.ReplayServiceStub(ch).Info(replay_pb2.InfoRequest(), timeout=5)
            return len(response.tables)

    assert asyncio.run(info()) == 1


# ------------------------------------------------------------------ refused


def test_without_token_unauthenticated_with_message(replay, operator):
    no_token = dataclasses.replace(operator, token_file="")
    with make_channel(replay.address, retry=False, security=no_token) as ch:
        with pytest.raises(grpc.RpcError) as e:
            replay_pb2_grpc.ReplayServiceStub(ch).Info(replay_pb2.InfoRequest(), timeout=5)
    assert e.value.code() == UNAUTHENTICATED
    assert "authorization: Bearer" in e.value.details()


def test_wrong_token_unauthenticated(replay, operator):
    wrong = dataclasses.replace(operator, token_file="", token="x" * 43)
    assert _info_code(replay.address, wrong) == UNAUTHENTICATED
    with make_channel(replay.address, retry=False, security=wrong) as ch:
        with pytest.raises(grpc.RpcError) as e:
            replay_pb2_grpc.ReplayServiceStub(ch).Info(replay_pb2.InfoRequest(), timeout=5)
    assert e.value.details() == "invalid bearer token"


def test_every_call_shape_refused_without_token(replay, params, operator):
    no_token = dataclasses.replace(operator, token_file="")
    with make_channel(replay.address, retry=False, security=no_token) as ch:
        stub = replay_pb2_grpc.ReplayServiceStub(ch)
        request = replay_pb2.InsertRequest.FromString(encode_insert_request(table="t", items=_items(), num_items=1))
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Insert(iter([request]), timeout=5))
        assert e.value.code() == UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Sample(replay_pb2.SampleRequest(table="t", batch_size=1, num_batches=1), timeout=5))
        assert e.value.code() == UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:  # an unknown method: refused the same way, nothing revealed
            ch.unary_unary("/herd.v1.ReplayService/NoSuchMethod")(b"", timeout=5)
        assert e.value.code() == UNAUTHENTICATED
    with make_channel(params.address, retry=False, security=no_token) as ch:
        stub = params_pb2_grpc.ParameterServiceStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.Publish(iter([params_pb2.ParamsChunk()]), timeout=5)
        assert e.value.code() == UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Subscribe(params_pb2.SubscribeRequest(name="policy"), timeout=5))
        assert e.value.code() == UNAUTHENTICATED


def test_mtls_refuses_a_client_without_certificate(replay, operator):
    no_cert = dataclasses.replace(operator, tls_cert="", tls_key="")  # CA + token, no client certificate
    assert _info_code(replay.address, no_cert) == UNAVAILABLE


def test_mtls_refuses_a_certificate_from_another_ca(replay, operator, tmp_path):
    other = write_secure_files(str(tmp_path / "other"))
    foreign = dataclasses.replace(operator, tls_cert=other.client_cert, tls_key=other.client_key)
    assert _info_code(replay.address, foreign) == UNAVAILABLE


def test_client_refuses_a_server_its_ca_did_not_sign(replay, operator, tmp_path):
    other = write_secure_files(str(tmp_path / "other"))
    assert _info_code(replay.address, dataclasses.replace(operator, tls_ca=other.ca_cert)) == UNAVAILABLE


def test_plaintext_client_cannot_talk_to_a_tls_server(replay):
    assert _info_code(replay.address, None) == UNAVAILABLE


# ------------------------------------------------------------------ what stays open


def test_health_needs_no_token(replay, params, operator):
    tls_only = dataclasses.replace(operator, token_file="")
    assert check_health(replay.address, security=tls_only) == "SERVING"
    assert check_health(params.address, "herd.v1.ParameterService", security=tls_only) == "SERVING"
    with make_channel(replay.address, retry=False, security=tls_only) as ch:
        response = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert check_health(replay.address) == "UNKNOWN"  # TLS is still required


def test_reflection_needs_the_token(replay, operator):
    def list_services(security: SecurityOptions) -> list[str]:
        with make_channel(replay.address, retry=False, security=security) as ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                  timeout=5)
            return [s.name for r in responses for s in r.list_services_response.service]

    assert "herd.v1.ReplayService" in list_services(operator)
    with pytest.raises(grpc.RpcError) as e:
        list_services(dataclasses.replace(operator, token_file=""))
    assert e.value.code() == UNAUTHENTICATED


def test_token_without_tls(files):
    token_only = SecurityOptions(token_file=files.token_file)
    config = ReplayServiceConfig(server=ServerOptions(grace_seconds=0.5), security=token_only,
                                 tables=(TableConfig.uniform_replay("t", 10),))
    server = ServiceThread(serve_replay, config, name="token replay")
    try:
        assert _info_code(server.address, token_only) == grpc.StatusCode.OK
        assert _info_code(server.address, None) == UNAUTHENTICATED
        assert check_health(server.address) == "SERVING"
    finally:
        server.stop()


def test_tls_server_name_override(tmp_path):
    """A certificate for a name other than the dialed host (e.g. a Kubernetes service name)."""
    from herd.launch import tls_files

    ca_key, ca = make_ca()
    key, cert = tls_files.issue(ca_key, ca, "replay", names=["replay.herd.svc"])
    pem = tls_files.serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "s.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "s.key").write_bytes(tls_files._pem_key(key))
    server_side = SecurityOptions(tls_cert=str(tmp_path / "s.pem"), tls_key=str(tmp_path / "s.key"))
    config = ReplayServiceConfig(server=ServerOptions(grace_seconds=0.5), security=server_side,
                                 tables=(TableConfig.uniform_replay("t", 10),))
    server = ServiceThread(serve_replay, config, name="named replay")
    try:
        client = SecurityOptions(tls_ca=str(tmp_path / "ca.pem"))
        assert _info_code(server.address, client) == UNAVAILABLE  # 127.0.0.1 is not in the certificate
        named = dataclasses.replace(client, tls_server_name="replay.herd.svc")
        assert _info_code(server.address, named) == grpc.StatusCode.OK
    finally:
        server.stop()


# ------------------------------------------------------------------ files and options


def test_generated_files_permissions(files):
    assert stat.S_IMODE(os.stat(files.directory).st_mode) == 0o700
    for path in (files.server_key, files.client_key, files.token_file):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    token = open(files.token_file).read().strip()
    assert len(token) >= 32


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"tls_cert": "CERT"}, "security.tls_key"),
        ({"tls_key": "KEY"}, "security.tls_cert"),
        ({"tls_cert": "CERT", "tls_key": "/no/such.key"}, "security.tls_key"),
        ({"tls_ca": "/no/such/ca.pem"}, "security.tls_ca"),
        ({"tls_cert": "CERT", "tls_key": "KEY", "tls_client_auth": True}, "security.tls_ca"),
        ({"tls_ca": "CA", "tls_client_auth": True}, "security.tls_cert"),
        ({"token_file": "/no/such/token"}, "security.token_file"),
        ({"token": "short"}, "security.token"),
        ({"token": "has a space in the middle!"}, "security.token"),
        ({"token": "x" * 20, "token_file": "TOKEN"}, "security.token"),
    ],
)
def test_security_options_name_the_bad_field(files, fields, field):
    paths = {"CERT": files.server_cert, "KEY": files.server_key, "CA": files.ca_cert, "TOKEN": files.token_file}
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        SecurityOptions(**{k: paths.get(v, v) if isinstance(v, str) else v for k, v in fields.items()})


def test_empty_token_file_refused(tmp_path):
    (tmp_path / "token").write_text("\n")
    with pytest.raises(ValueError, match="security.token_file"):
        SecurityOptions(token_file=str(tmp_path / "token"))


def test_token_not_in_repr():
    assert "s3cret" not in repr(SecurityOptions(token="s3cret-s3cret-s3cret"))


def test_serve_flags_and_env(files, monkeypatch):
    """``herd serve`` builds SecurityOptions from HERD_TLS_* / HERD_TOKEN_FILE, and names a bad file."""
    from herd import cli
    from herd.run_config import load_run_config

    monkeypatch.setenv("HERD_TLS_CERT", files.server_cert)
    monkeypatch.setenv("HERD_TLS_KEY", files.server_key)
    monkeypatch.setenv("HERD_TLS_CA", files.ca_cert)
    monkeypatch.setenv("HERD_TLS_CLIENT_AUTH", "1")
    monkeypatch.setenv("HERD_TOKEN_FILE", files.token_file)
    run, _ = load_run_config(None, None, {})
    args = cli.build_parser().parse_args(["serve", "params"])
    security = cli._service_config(args, run).security
    assert security == SecurityOptions(tls_cert=files.server_cert, tls_key=files.server_key, tls_ca=files.ca_cert,
                                       tls_client_auth=True, token_file=files.token_file)
    monkeypatch.delenv("HERD_TOKEN_FILE")
    monkeypatch.setenv("HERD_TOKEN", "t" * 24)
    args = cli.build_parser().parse_args(["serve", "replay"])
    assert cli._service_config(args, run).security.bearer_token() == "t" * 24
    args = cli.build_parser().parse_args(["serve", "replay", "--tls-key", "/no/such.key"])
    with pytest.raises(ValueError, match=r"security\.tls_key"):
        cli._service_config(args, run)
