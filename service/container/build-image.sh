#!/bin/sh
# Build the convlab image (service/Dockerfile) on a machine whose packages come from local indexes, and print
# its tag. Run from anywhere; the build context is the repository root.
#
#   service/container/build-image.sh [TAG] [-- extra docker build arguments]     # default tag: convlab:latest
#
# Environment (all optional; without any, this is a plain `docker build` with the Dockerfile's defaults):
#   DOCKER         the Docker client. It must speak BuildKit: Docker >= 23 with buildx, or Docker 20.10's own
#                  client (this script sets DOCKER_BUILDKIT=1); by default the first of `docker` on PATH and
#                  /usr/bin/docker that does.
#   BASE_IMAGE     the base image; `debootstrap` makes (once) convlab-base:bookworm from Debian's archive with
#                  base-image.sh, for machines that cannot pull python:3.11-slim-bookworm from Docker Hub.
#   LOCAL_INDEXES  `from-pip`: the local (file://) indexes this machine's pip is configured with; or
#                  local PEP 503 index folders (space-separated, each `<dir>/simple` with its files beside it, as
#                  pip's `file://` indexes are): served over HTTP on 127.0.0.1 for the build's duration, which then
#                  runs with host networking. torch comes from the first that has it; the others are searched
#                  after PyPI for everything else, so that a release both hold comes from the local copy.
#   LOCAL_INDEX_PORT  the port they are served on (default 47613).
#   CA_BUNDLE      a complete CA bundle handed to pip as a build secret (a TLS-intercepting proxy's CA included);
#                  it is in no layer of the image. `from-pip`: the bundle this machine's pip uses, if it sets one.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tag="${1:-convlab:latest}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
if [ -z "${DOCKER:-}" ]; then  # the first client that builds with BuildKit (Docker 20.10's own, beside a newer one)
    for candidate in docker /usr/bin/docker; do
        if DOCKER_BUILDKIT=1 "$candidate" build --help 2>/dev/null | grep -q -- --secret; then
            DOCKER="$candidate"
            break
        fi
    done
fi
docker="${DOCKER:-docker}"  # what is left in "$@" goes to `docker build`

pip_config() { python3 -m pip config get "$1" 2>/dev/null || true; }
if [ "${LOCAL_INDEXES:-}" = from-pip ]; then
    LOCAL_INDEXES=""
    for url in $(pip_config global.index-url) $(pip_config global.extra-index-url); do
        case "$url" in file://*) LOCAL_INDEXES="$LOCAL_INDEXES ${url#file://}" ;; esac
    done
fi
if [ "${CA_BUNDLE:-}" = from-pip ]; then CA_BUNDLE="${PIP_CERT:-$(pip_config global.cert)}"; fi

if [ "${BASE_IMAGE:-}" = debootstrap ]; then
    BASE_IMAGE=convlab-base:bookworm
    "$docker" image inspect "$BASE_IMAGE" >/dev/null 2>&1 || DOCKER="$docker" "$here/base-image.sh" "$BASE_IMAGE"
fi
if [ -n "${BASE_IMAGE:-}" ]; then set -- "$@" --build-arg "BASE_IMAGE=$BASE_IMAGE"; fi
if [ -n "${CA_BUNDLE:-}" ]; then set -- "$@" --secret "id=ca_bundle,src=$CA_BUNDLE"; fi

served=""
if [ -n "${LOCAL_INDEXES:-}" ]; then
    served="$(mktemp -d)"
    # The indexes' URLs are build arguments, hence part of the layers' cache keys: a fixed port keeps them (a busy
    # one is replaced by a free one, at the price of rebuilding torch's layer).
    port="$(python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does: a past build'"'"'s TIME_WAIT is no obstacle
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "${LOCAL_INDEX_PORT:-47613}")"
    torch_index="" local_indexes=""
    for index in $LOCAL_INDEXES; do
        # served by the folder above (the index's links, ../../files/..., stay inside), under a name made of its
        # path: the URLs, hence the cache keys, do not depend on the order of LOCAL_INDEXES
        name="$(dirname "$index" | tr -c 'A-Za-z0-9\n' '-' | sed 's/^-*//')"
        ln -s "$(dirname "$index")" "$served/$name"
        url="http://127.0.0.1:$port/$name/$(basename "$index")"
        if [ -z "$torch_index" ] && [ -d "$index/torch" ]; then torch_index="$url"; else local_indexes="$local_indexes $url"; fi
    done
    python3 -m http.server --bind 127.0.0.1 --directory "$served" "$port" >"$served.log" 2>&1 &
    server=$!
    trap 'kill "$server" 2>/dev/null; rm -rf "$served" "$served.log"' EXIT
    # pip's resolver takes the last index's copy of a release that several indexes hold: the local ones go last
    set -- "$@" --network host --build-arg "PIP_TRUSTED_HOST=127.0.0.1:$port" \
        --build-arg "PIP_EXTRA_INDEX_URL=${local_indexes# }"
    if [ -n "$torch_index" ]; then set -- "$@" --build-arg "TORCH_INDEX_URL=$torch_index"; fi
    python3 -c "import time, urllib.request as u
for _ in range(50):
    try: u.urlopen('http://127.0.0.1:$port/'); break
    except OSError: time.sleep(0.1)"
fi

DOCKER_BUILDKIT=1 "$docker" build --progress=plain -f "$repo/service/Dockerfile" -t "$tag" "$@" "$repo" >&2
echo "$tag"
