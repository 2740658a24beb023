#!/bin/sh
# Make a Debian bookworm base image with Python 3.11 from Debian's own packages, for machines that can reach
# Debian's archive but not Docker Hub (where python:3.11-slim-bookworm, the Dockerfile's default base, lives).
#
#   service/container/base-image.sh [TAG]      # default tag: convlab-base:bookworm
#
# Needs root, debootstrap and a Docker engine. It plays the role of python:3.11-slim-bookworm: python3 (3.11),
# python3-venv and ca-certificates on a minimal Debian. Nothing else of the host goes into the image.
set -eu
tag="${1:-convlab-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
docker="${DOCKER:-docker}"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$tag" >/dev/null
echo "$tag"
