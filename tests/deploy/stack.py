"""The compose stack of docker-compose.yml, run for real by the deployment test, and what the test asks of it."""

import gzip
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.engine import ROOT, Engine

TOKEN = re.compile(r"\bcvl_[A-Za-z0-9_-]{20,}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """One compose project: its files, its environment, and the API's published port on loopback."""

    engine: Engine
    project: str
    files: list[Path]
    variables: dict[str, str]
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The caller's environment less any CONVLAB_/COMPOSE_ setting (an admin token there would replace the
        bootstrap flow), plus the stack's own variables."""
        kept = {k: v for k, v in os.environ.items() if not k.startswith(("CONVLAB_", "COMPOSE_"))}
        return {**kept, "CONVLAB_PORT": f"127.0.0.1:{self.port}", **self.variables}

    def compose(self, *args: str, timeout: float = 300) -> str:
        """Run a compose command on this project; its output, or an AssertionError with it."""
        files = [a for f in self.files for a in ("-f", str(f))]
        command = [*self.engine.compose, "-p", self.project, *files, *args]
        result = subprocess.run(
            command, cwd=ROOT, env=self.environment(), capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def docker(self, *args: str, timeout: float = 150) -> str:
        result = subprocess.run([self.engine.docker, *args], capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def containers(self, service: str) -> list[str]:
        """Full ids of the service's containers, stopped ones included."""
        return self.compose("ps", "-a", "-q", service).split()

    def logs(self, container: str) -> str:
        result = subprocess.run([self.engine.docker, "logs", container], capture_output=True, text=True)
        return result.stdout + result.stderr

    def recent_logs(self) -> str:
        """The last lines of every service's logs, for a failure's message."""
        try:
            return self.compose("logs", "--no-color", "--tail", "25", timeout=60)
        except AssertionError as exc:
            return str(exc)

    def state(self, container: str) -> str:
        return self.docker("inspect", "--format", "{{.State.Status}}", container).strip()

    def exit_code(self, container: str) -> int:
        return int(self.docker("inspect", "--format", "{{.State.ExitCode}}", container))


def wait_for(what: str, check: Callable[[], Any], stack: Stack, *, timeout: float, every: float = 0.25) -> Any:
    """Poll `check` until it returns something truthy (its value) or `timeout` passes (fail, with the logs)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = last = check()
        except httpx.TransportError as exc:  # the port is published before the API listens
            value, last = None, exc
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{stack.recent_logs()}")


def wait_ready(stack: Stack, *, timeout: float = 240) -> None:
    """Until GET /health/ready answers 200 through the published port."""
    wait_for(
        "GET /health/ready",
        lambda: httpx.get(f"{stack.url}/health/ready", timeout=5).status_code == 200,
        stack,
        timeout=timeout,
    )


def fashion_mnist_test_images(data_dir: Path, count: int) -> tuple[list[list[list[int]]], list[int]]:
    """The first `count` Fashion-MNIST test images (28x28, 0..255) and their labels, from the raw IDX files."""
    raw = data_dir / "FashionMNIST" / "raw"
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz") as f:
        pixels = f.read(16 + count * 784)[16:]
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz") as f:
        labels = list(f.read(8 + count)[8:])
    images = [[list(pixels[i * 784 + r * 28 : i * 784 + (r + 1) * 28]) for r in range(28)] for i in range(count)]
    return images, labels
