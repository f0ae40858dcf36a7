#!/usr/bin/env bash
# The local base image `local/debian:bookworm` for machines without an image registry:
# a Debian root filesystem made from Debian's own packages (debootstrap --variant=minbase, from
# the mirror this machine's apt uses) with Python 3.11 and its venv module, then `docker import`.
# Nothing inside `docker build` needs the network afterwards (see scripts/images.sh).
#
#   bash scripts/base_image.sh            # builds it unless the image exists
#   FORCE=1 bash scripts/base_image.sh    # rebuilds it
#
# Needs root, debootstrap and a running Docker engine (`make setup` installs both tools).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${BASE_IMAGE:-local/debian:bookworm}
SUITE=bookworm
TOOLS=${TOOLS:-$PWD/.tools}
ROOTFS=$TOOLS/rootfs
# python3.11-venv's dependencies, named because debootstrap resolves only Depends, not Provides.
PACKAGES=python3.11,python3.11-venv,python3-distutils,python3-pip-whl,python3-setuptools-whl

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base_image: $IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "base_image: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "base_image: debootstrap is missing: run make setup as root" >&2; exit 1; }

# The mirror of the suite as apt is configured here (sources.list or deb822 .sources files).
MIRROR=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
         | awk -v s="$SUITE" '$1 == s { print $2; exit }')
MIRROR=${MIRROR:-http://deb.debian.org/debian/}

start=$(date +%s.%N)
rm -rf "$ROOTFS"
mkdir -p "$TOOLS/debootstrap-cache"
echo "base_image: debootstrap --variant=minbase $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$TOOLS/debootstrap-cache" \
      "$SUITE" "$ROOTFS" "$MIRROR" >"$TOOLS/debootstrap.log" 2>&1; then
  tail -20 "$TOOLS/debootstrap.log" >&2
  [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -20 "$ROOTFS/debootstrap/debootstrap.log" >&2
  exit 1
fi
# What an image does not need: package caches and lists, documentation, the host's names.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/etc/hostname "$ROOTFS"/etc/resolv.conf
tar -C "$ROOTFS" --numeric-owner -c . \
  | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $SUITE + $PACKAGES" - "$IMAGE" >/dev/null
rm -rf "$ROOTFS"
echo "base_image: $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')) in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}') s"
