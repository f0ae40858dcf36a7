"""Generated code of the wire contracts (proto package ``herd.v1``, sources in ``protos/herd/v1``).

Everything here except this file is written by ``python scripts/gen_protos.py``: do not edit
it by hand; ``tests/wire/test_generated_code_fresh.py`` fails when it is stale. Import the
modules directly, e.g. ``from herd.v1 import replay_pb2, replay_pb2_grpc``; code outside
``herd/wire``, servicers and clients should not need them (see ``herd.wire.codec``).
"""
