#!/usr/bin/env bash
# The images of docker-compose.yml, built on this machine without an image registry and without
# network inside `docker build` (docs/deployment-compose.md):
#
#   local/debian:bookworm      debootstrap minbase + Python 3.11 (scripts/base_image.sh)
#   herd:latest                deploy/Dockerfile on that base, Python packages from .tools/wheelhouse
#   local/redis:bookworm       Debian's redis-server on that base (deploy/images/redis.Dockerfile)
#   local/prometheus:bookworm  Debian's prometheus on that base (deploy/images/prometheus.Dockerfile)
#
# The wheelhouse and the .deb files are prepared on the host (pip and apt as configured here) and
# kept in .tools/ (git-ignored); each step is skipped when its inputs did not change, so a
# code-only change rebuilds only herd's last layers. Needs a running Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-${VENV:-.venv}/bin/python}
TOOLS=$PWD/.tools
BASE_IMAGE=${BASE_IMAGE:-local/debian:bookworm}
HERD_IMAGE=${HERD_IMAGE:-herd:latest}
REDIS_IMAGE=${HERD_REDIS_IMAGE:-local/redis:bookworm}
PROMETHEUS_IMAGE=${HERD_PROMETHEUS_IMAGE:-local/prometheus:bookworm}
# The legacy builder: BuildKit would need the buildx plugin with newer docker clients, and its
# `# syntax=` frontends come from a registry.
export DOCKER_BUILDKIT=0

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b-a}'; }
size_mb() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f", $1/1e6}'; }
build() {  # build IMAGE ARGS...: docker build, quietly unless it fails
  local image=$1 start log
  shift
  start=$(now)
  log=$TOOLS/build-${image//[:\/]/-}.log
  if ! docker build -t "$image" "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "images: building $image failed (log: $log)" >&2
    exit 1
  fi
  echo "images: $image $(size_mb "$image") MB, built in $(since "$start") s"
}

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || { echo "images: no Docker engine answers (start dockerd as root; make compose does)" >&2; exit 1; }
mkdir -p "$TOOLS"
bash scripts/base_image.sh

# Python packages: pyproject.toml's dependencies under constraints.txt, resolved for the base
# image's Python (scripts/wheelhouse.py); the stamp names the inputs, so they are fetched again
# only when those change.
base_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")
stamp=$(cat pyproject.toml constraints.txt scripts/wheelhouse.py <(echo "$base_id") | sha256sum | cut -c1-16)
if [ "$(cat "$TOOLS/wheelhouse/.inputs" 2>/dev/null)" != "$stamp" ]; then
  start=$(now)
  rm -rf "$TOOLS/wheelhouse"
  "$PYTHON" scripts/wheelhouse.py --image "$BASE_IMAGE" --dest "$TOOLS/wheelhouse" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$stamp" >"$TOOLS/wheelhouse/.inputs"
  echo "images: wheelhouse $(du -sm "$TOOLS/wheelhouse" | cut -f1) MB ($(ls "$TOOLS/wheelhouse" | grep -c '\.whl$') wheels) in $(since "$start") s"
fi

# Debian packages the base lacks: apt resolves them against the base image's own dpkg status.
debs() {  # debs NAME PACKAGE...: .tools/debs/NAME holds the .deb files PACKAGE... need on the base
  local name=$1 dir=$TOOLS/debs/$1
  shift
  [ "$(cat "$dir/.inputs" 2>/dev/null)" = "$base_id $*" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir/partial"
  docker run --rm --network none "$BASE_IMAGE" cat /var/lib/dpkg/status >"$TOOLS/base-dpkg-status"
  local apt=(apt-get install -y -qq --download-only --no-install-recommends
             -o Dir::State::status="$TOOLS/base-dpkg-status" -o Dir::Cache::archives="$dir" "$@")
  "${apt[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && "${apt[@]}" >/dev/null; }
  rm -rf "$dir/partial" "$dir/lock"
  echo "$base_id $*" >"$dir/.inputs"
}
debs redis redis-server
debs prometheus prometheus wget

build "$HERD_IMAGE" -f deploy/Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg WHEELHOUSE=.tools/wheelhouse --build-arg PIP_NO_INDEX=1 .
build "$REDIS_IMAGE" -f deploy/images/redis.Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" "$TOOLS/debs/redis"
build "$PROMETHEUS_IMAGE" -f deploy/images/prometheus.Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" \
  "$TOOLS/debs/prometheus"
