#!/usr/bin/env bash
# A Debian bookworm base image tarball for node_image/Dockerfile where no registry is reachable:
# debootstrap from Debian's mirror, then `docker import OUT.tar meshpay-base:bookworm` (the
# Dockerfile's BASE). Needs root and debootstrap; about 2-4 minutes.
#   usage: node_image/make-base.sh OUT.tar [MIRROR]
set -euo pipefail
out=${1:?usage: make-base.sh OUT.tar [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { echo "make-base.sh: apt-get install debootstrap" >&2; exit 1; }
root=$(mktemp -d "${TMPDIR:-/tmp}/meshpay-base.XXXXXX")
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase \
  --include=python3,python3-venv,iproute2,iw,wpasupplicant,iputils-ping,ca-certificates \
  bookworm "$root" "$mirror"
# Nothing in the image needs apt's cache or the docs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "make-base.sh: wrote $out ($(du -h "$out" | cut -f1))"
