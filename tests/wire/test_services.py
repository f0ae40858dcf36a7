"""Every service of protos/herd/v1 imports, has its stub/servicer, and has the agreed RPC shapes."""

from __future__ import annotations

import importlib

import grpc
import pytest

# service -> (module, {method: (client_streaming, server_streaming)})
CONTRACT = {
    "ReplayService": (
        "replay",
        {
            "Insert": (True, True),
            "Sample": (False, True),
            "UpdatePriorities": (False, False),
            "Info": (False, False),
            "Checkpoint": (False, False),
        },
    ),
    "ParameterService": (
        "params",
        {"Publish": (True, False), "Fetch": (False, True), "Subscribe": (False, True), "List": (False, False)},
    ),
    "ActorService": ("actor", {"Status": (False, False), "Pause": (False, False), "Resume": (False, False), "ReloadConfig": (False, False)}),
    "LearnerService": ("learner", {"Status": (False, False), "Pause": (False, False), "Resume": (False, False), "ReloadConfig": (False, False)}),
}
MODULES = ["tensor", "common", "replay", "params", "actor", "learner"]


@pytest.mark.parametrize("module", MODULES)
def test_messages_import(module):
    pb2 = importlib.import_module(f"herd.v1.{module}_pb2")
    assert pb2.DESCRIPTOR.package == "herd.v1"


def test_no_service_is_missing_from_the_contract():
    found = set()
    for module in MODULES:
        found |= set(importlib.import_module(f"herd.v1.{module}_pb2").DESCRIPTOR.services_by_name)
    assert found == set(CONTRACT)


@pytest.mark.parametrize("service", sorted(CONTRACT))
def test_service_stub_and_servicer(service):
    module, methods = CONTRACT[service]
    pb2 = importlib.import_module(f"herd.v1.{module}_pb2")
    pb2_grpc = importlib.import_module(f"herd.v1.{module}_pb2_grpc")
    desc = pb2.DESCRIPTOR.services_by_name[service]
    assert desc.full_name == f"herd.v1.{service}"
    shapes = {m.name: (m.client_streaming, m.server_streaming) for m in desc.methods}
    assert shapes == methods
    assert hasattr(pb2_grpc, f"{service}Servicer")
    assert hasattr(pb2_grpc, f"add_{service}Servicer_to_server")
    with grpc.insecure_channel("127.0.0.1:1") as channel:  # never connected
        stub = getattr(pb2_grpc, f"{service}Stub")(channel)
        for name in methods:
            assert callable(getattr(stub, name))
