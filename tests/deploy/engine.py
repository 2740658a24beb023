"""A Docker engine and compose for the deployment test: find them, start dockerd if needed, build the image.

The client: the first `docker` that can build with BuildKit (the Dockerfile mounts a build secret). Where the
engine is Debian's docker.io (dockerd 20.10), a newer client on PATH without the buildx plugin (Docker 28 here)
only has the legacy builder, while the engine's own /usr/bin/docker has BuildKit built in and speaks the engine's
API version exactly; so that one is taken, for every command. CONVLAB_TEST_DOCKER names another.
Compose: `docker compose` (v2) when the client has it, else Debian's `docker-compose` (1.29).
"""

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "service" / "container" / "build-image.sh"
DOCKERD_LOG = Path(tempfile.gettempdir()) / "convlab-test-dockerd.log"
BUILD_LOG = Path(tempfile.gettempdir()) / "convlab-test-build.log"  # the last build's output, step times included


@dataclass(frozen=True)
class Engine:
    """A usable engine: the client to run and the compose command line's start."""

    docker: str
    compose: tuple[str, ...]


def _ok(*command: str, env: dict[str, str] | None = None, timeout: float = 30) -> bool:
    try:
        return subprocess.run(command, capture_output=True, env=env, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _buildkit_client() -> str | None:
    configured = os.environ.get("CONVLAB_TEST_DOCKER")
    candidates = [configured] if configured else [shutil.which("docker"), "/usr/bin/docker"]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    for client in filter(None, candidates):
        try:
            result = subprocess.run([client, "build", "--help"], capture_output=True, text=True, env=env, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and "--secret" in result.stdout:
            return client
    return None


def _start_dockerd(docker: str) -> str | None:
    """Start dockerd (root only) and wait for it; None when it answers, else why not."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return "no Docker engine answers and dockerd is not installed (make test-deps installs docker.io)"
    if os.geteuid() != 0:
        return "no Docker engine answers, and starting dockerd needs root"
    with DOCKERD_LOG.open("ab") as log:  # left running, like any system daemon, for the next run and other users
        subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _ok(docker, "info"):
            return None
        time.sleep(0.5)
    tail = DOCKERD_LOG.read_text(errors="replace").splitlines()[-5:]
    return "dockerd did not start within 60 s: " + " | ".join(tail)


def find_engine() -> Engine | str:
    """The engine to use, starting dockerd if none answers; or the reason there is none."""
    docker = _buildkit_client()
    if docker is None:
        return "no docker client that builds with BuildKit (make test-deps installs docker.io)"
    if not _ok(docker, "info"):
        reason = _start_dockerd(docker)
        if reason is not None:
            return reason
    if _ok(docker, "compose", "version"):
        return Engine(docker, (docker, "compose"))
    if shutil.which("docker-compose") and _ok("docker-compose", "version"):
        return Engine(docker, ("docker-compose",))
    return "neither `docker compose` nor docker-compose is installed (make test-deps installs docker-compose)"


def build_image(engine: Engine, tag: str) -> subprocess.CompletedProcess[str]:
    """Build service/Dockerfile as `tag` the way this kind of machine must (CONVLAB_TEST_BASE_IMAGE: the base;
    default: Debian's from debootstrap), with torch and the rest from the local indexes pip is configured with."""
    env = {
        **os.environ,
        "DOCKER": engine.docker,
        "BASE_IMAGE": os.environ.get("CONVLAB_TEST_BASE_IMAGE", "debootstrap"),
        "LOCAL_INDEXES": "from-pip",
        "CA_BUNDLE": "from-pip",
    }
    result = subprocess.run([str(BUILD_SCRIPT), tag], capture_output=True, text=True, env=env, timeout=1800)
    BUILD_LOG.write_text(result.stderr)
    return result
