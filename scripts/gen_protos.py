"""Regenerates the Python code of the wire contracts: ``protos/herd/v1/*.proto`` -> ``herd/v1/``.

The one command for generated code (STYLE.md 5)::

    python scripts/gen_protos.py          # regenerate in place
    python scripts/gen_protos.py --check  # exit 1, listing stale files, if herd/v1 is out of date

Proto packages map 1:1 to Python packages (``herd.v1`` -> ``herd/v1/``), so the generated
modules import each other as ``from herd.v1 import tensor_pb2``. For every proto it writes
``*_pb2.py`` and ``*_pb2.pyi``, and ``*_pb2_grpc.py`` only for protos that declare a service.
Hand-written files next to them (``__init__.py``) are left alone; generated files whose proto
is gone are deleted. Output depends only on the proto sources and the pinned grpcio-tools /
protobuf versions, so it is deterministic.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.resources
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent


def _protos(proto_dir: Path) -> list[str]:
    """Proto files relative to ``proto_dir``, sorted (the order protoc sees them in)."""
    return sorted(p.relative_to(proto_dir).as_posix() for p in proto_dir.rglob("*.proto"))


def generate(proto_dir: Path, out_dir: Path) -> list[str]:
    """Runs protoc on every proto under ``proto_dir``; returns the generated files (relative)."""
    protos = _protos(proto_dir)
    if not protos:
        raise SystemExit(f"no .proto files under {proto_dir}")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    descriptors = out_dir / "descriptors.binpb"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--descriptor_set_out={descriptors}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed (see the messages above)")
    file_set = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes())
    descriptors.unlink()
    with_services = {f.name for f in file_set.file if f.service}
    for proto in protos:
        if proto not in with_services:  # grpc plugin writes an empty module; drop it
            (out_dir / (proto[: -len(".proto")] + "_pb2_grpc.py")).unlink()
    return sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())


def _existing_generated(root: Path, package_dirs: set[str]) -> set[str]:
    """Generated-looking files currently in the output packages (relative to ``root``)."""
    found = set()
    for d in package_dirs:
        for p in (root / d).glob("*"):
            if p.is_file() and p.name.endswith(GENERATED_SUFFIXES):
                found.add(p.relative_to(root).as_posix())
    return found


def diff(root: Path, fresh_dir: Path, fresh: list[str]) -> list[str]:
    """Lines describing how ``root`` differs from freshly generated code (empty: up to date)."""
    package_dirs = {str(Path(f).parent) for f in fresh}
    problems = []
    for f in fresh:
        target = root / f
        if not target.exists():
            problems.append(f"missing: {f}")
        elif not filecmp.cmp(target, fresh_dir / f, shallow=False):
            problems.append(f"stale: {f}")
    for f in sorted(_existing_generated(root, package_dirs) - set(fresh)):
        problems.append(f"orphaned (its proto is gone): {f}")
    return problems


def write(root: Path, fresh_dir: Path, fresh: list[str]) -> list[str]:
    """Brings ``root`` in line with freshly generated code; returns what changed."""
    changes = diff(root, fresh_dir, fresh)
    for f in fresh:
        target = root / f
        target.parent.mkdir(parents=True, exist_ok=True)
        data = (fresh_dir / f).read_bytes()
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    package_dirs = {str(Path(f).parent) for f in fresh}
    for f in _existing_generated(root, package_dirs) - set(fresh):
        (root / f).unlink()
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale generated files; exit 1 if any")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="repository root (default: this repo)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    with tempfile.TemporaryDirectory(prefix="herd-protos-") as tmp:
        fresh_dir = Path(tmp)
        fresh = generate(root / "protos", fresh_dir)
        if args.check:
            problems = diff(root, fresh_dir, fresh)
            if problems:
                print("generated code is out of date; run `python scripts/gen_protos.py`:", file=sys.stderr)
                for line in problems:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print(f"generated code is up to date ({len(fresh)} files)")
            return 0
        changes = write(root, fresh_dir, fresh)
        for line in changes:
            print(line)
        print(f"{len(fresh)} generated files, {len(changes)} changed")
        return 0


if __name__ == "__main__":
    sys.exit(main())
