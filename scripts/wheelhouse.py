"""The wheelhouse of the offline image build (scripts/images.sh): every wheel deploy/Dockerfile
installs, downloaded on the host by pip as this machine configures it (which finds the CPU torch
wheel on disk), but resolved for the image's Python.

    python scripts/wheelhouse.py --image local/debian:bookworm --dest .tools/wheelhouse

Why not a plain ``pip download``: pip evaluates environment markers for the Python that runs it,
and the host's 3.11.x is not the image's (Debian's 3.11.2): redis, for one, needs async-timeout
only below 3.11.3. So the image's marker environment is read from the image (``docker run
--network none``) and pip's marker evaluation is pointed at it before pip runs, in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# PEP 508's marker environment, computed by the image's own Python (stdlib only).
MARKER_ENVIRONMENT = r"""
import json, os, platform, sys
v = sys.implementation.version
impl = f"{v.major}.{v.minor}.{v.micro}" + ("" if v.releaselevel == "final" else v.releaselevel[0] + str(v.serial))
print(json.dumps({
    "implementation_name": sys.implementation.name, "implementation_version": impl,
    "os_name": os.name, "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}))
"""


def image_environment(image: str) -> dict[str, str]:
    """The marker environment of ``python3`` in ``image``."""
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", image, "python3", "-c", MARKER_ENVIRONMENT],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit(f"wheelhouse: cannot run python3 in {image}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def requirements() -> list[str]:
    """pyproject.toml's dependencies and what builds the package without build isolation."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return [*tomllib.load(f)["project"]["dependencies"], "setuptools>=68", "wheel"]


def download(dest: str, environment: dict[str, str]) -> int:
    """``pip download`` of every requirement into ``dest``, markers evaluated for ``environment``."""
    from pip._internal.cli.main import main as pip_main
    from pip._vendor.packaging import markers

    host_environment = markers.default_environment
    markers.default_environment = lambda: {**host_environment(), **environment}
    return pip_main([
        "download", "--quiet", "--only-binary=:all:", "--python-version", environment["python_full_version"],
        "--dest", dest, "--constraint", os.path.join(ROOT, "constraints.txt"), *requirements(),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="the base image whose Python installs the wheels")
    parser.add_argument("--dest", required=True, help="the wheelhouse folder")
    args = parser.parse_args()
    environment = image_environment(args.image)
    os.makedirs(args.dest, exist_ok=True)
    return download(args.dest, environment)


if __name__ == "__main__":
    sys.exit(main())
