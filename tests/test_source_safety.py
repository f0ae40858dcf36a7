"""No code-execution-on-load in the package sources: no pickle, no unsafe ``torch.load``, no eval/exec.

The sources are parsed with ``ast`` (comments, docstrings and strings never count), so a hit
is real code. A checkpoint, persisted parameter set or request that could run code when loaded
would turn a writable run directory or a network peer into remote code execution.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("herd", "actor_service", "replay_service", "learner_service", "param_server")
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "shelve", "cloudpickle", "joblib"}


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def scan(source: str, filename: str = "<source>") -> list[str]:
    """Unsafe constructs in ``source``, one ``file:line: what`` per hit."""
    tree = ast.parse(source, filename)
    hits: list[str] = []
    aliases: dict[str, str] = {}  # local name -> module it is bound to (import torch as T)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name
                if alias.name.split(".")[0] in PICKLE_MODULES:
                    hits.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in PICKLE_MODULES:
                hits.append(f"{filename}:{node.lineno}: from {node.module} import ...")
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                if alias.name in PICKLE_MODULES:
                    hits.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("eval", "exec") and func.id not in aliases:
            hits.append(f"{filename}:{node.lineno}: {func.id}() call")
        if isinstance(func, ast.Name) and func.id == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in PICKLE_MODULES:
                hits.append(f"{filename}:{node.lineno}: __import__({arg.value!r})")
        target = None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = f"{aliases.get(func.value.id, func.value.id)}.{func.attr}"
        elif isinstance(func, ast.Name) and func.id in aliases:
            target = aliases[func.id]
        if target == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            hits.append(f"{filename}:{node.lineno}: torch.load without weights_only=True")
        if target in ("numpy.load", "np.load") and _is_true(_keyword(node, "allow_pickle")):
            hits.append(f"{filename}:{node.lineno}: numpy.load with allow_pickle=True")
        if target == "importlib.import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in PICKLE_MODULES:
                hits.append(f"{filename}:{node.lineno}: import_module({arg.value!r})")
    return hits


def _sources() -> list[pathlib.Path]:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 50, f"found only {len(files)} source files under {ROOT}: wrong root?"
    return files


def test_package_sources_have_no_unsafe_loading_or_eval():
    hits = [hit for path in _sources() for hit in scan(path.read_text(), str(path.relative_to(ROOT)))]
    assert hits == []


@pytest.mark.parametrize(
    "source, found",
    [
        ("import pickle", 1),
        ("import pickle as p", 1),
        ("from pickle import loads", 1),
        ("import dill.settings", 1),
        ("from concurrent import futures", 0),
        ("import torch\ntorch.load(f)", 1),
        ("import torch\ntorch.load(f, weights_only=False)", 1),
        ("import torch\ntorch.load(f, map_location='cpu', weights_only=True)", 0),
        ("import torch as T\nT.load(f)", 1),
        ("from torch import load\nload(f)", 1),
        ("import numpy as np\nnp.load(f, allow_pickle=True)", 1),
        ("import numpy as np\nnp.load(f, allow_pickle=False)", 0),
        ("eval('1 + 1')", 1),
        ("exec(code)", 1),
        ("net.eval()", 0),  # torch's Module.eval is no eval()
        ("__import__('pickle')", 1),
        ("import importlib\nimportlib.import_module('pickle')", 1),
        ("# import pickle\nx = 'torch.load(f) eval(x) exec(y)'\n'''import pickle'''", 0),
    ],
)
def test_scanner_finds_what_it_should(source, found):
    assert len(scan(source)) == found, scan(source)
