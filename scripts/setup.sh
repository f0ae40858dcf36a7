#!/usr/bin/env bash
# `make setup`: everything Herd and its tests need on a fresh Debian/Python 3.11 machine.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# System servers the integration tests run for real (Redis; Prometheus for the metrics tests),
# and what the container test and `make compose` need: the Docker engine, and debootstrap for
# the local base image (scripts/base_image.sh; there is no image registry to pull one from).
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# torch first, pinned: any other version would pull a multi-GB CUDA build.
$VENV/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null \
  || $PIP install -q torch==2.13.0
# The environment extras too: the tests run real Atari and MinAtar games.
$PIP install -q -c constraints.txt -e '.[dev,atari,minatar]'
echo "setup: ok ($($VENV/bin/python -c 'import torch, grpc; print("torch", torch.__version__, "grpcio", grpc.__version__)'))"
