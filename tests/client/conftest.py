"""A live `convlab serve` for the client and its commands: the shared data, downloads off, fast polling."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.client import Client
from tests.api.conftest import test_images
from tests.e2e.conftest import LiveServer, free_port, serve_env, stop, wait_until_healthy

FAST = {"CONVLAB_EVENTS_POLL_SECONDS": "0.2", "CONVLAB_POLL_SECONDS": "0.2", "CONVLAB_ALLOW_DOWNLOAD": "false"}
SMALL_JOB = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 2,
    "batch_size": 128,
    "train_subset": 1024,
    "test_subset": 256,
    "optimizer": {"lr": 0.5},
}


def start_serve(state_dir: Path, data_dir: Path, port: int, *, workers: int, **env: str) -> "subprocess.Popen[bytes]":
    """`convlab serve` on `port` with its own SQLite database in `state_dir` (its log in serve.log there)."""
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", str(workers)]
    with (state_dir / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            env=serve_env(state_dir, data_dir, **{**FAST, **env}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_until_healthy(f"http://127.0.0.1:{port}", process, state_dir / "serve.log")
    return process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[LiveServer]:
    state_dir = tmp_path_factory.mktemp("client-live")
    port = free_port()
    process = start_serve(state_dir, data_dir, port, workers=1)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", state_dir, state_dir / "serve.log")
    finally:
        stop(process)


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, token="") as c:
        yield c


__all__ = ["client", "server", "test_images"]
