"""A live `convlab serve` (uvicorn on a free loopback port, one real worker process) on a temporary database."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

STARTUP_SECONDS = 60


@dataclass(frozen=True)
class LiveServer:
    url: str
    state_dir: Path
    log: Path


def read_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The events of an SSE stream's lines, until it ends: each as {event, id, data} (data parsed as JSON)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "event" in current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = json.loads(value) if key == "data" else value
    return events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"convlab serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"convlab serve did not become healthy in {STARTUP_SECONDS}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (serve stops its workers, which checkpoint and requeue), then kill whatever is left of its group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=90)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the server and any worker it left behind (own session)
    process.wait()


def serve_env(state_dir: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `convlab serve` on its own SQLite database in `state_dir`."""
    return {
        **os.environ,
        "CONVLAB_STATE_DIR": str(state_dir),
        "CONVLAB_DATABASE_URL": "",
        "CONVLAB_DATA_DIR": str(data_dir),
        **extra,
    }


def launch(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A server process in a session of its own (so that `stop` ends its whole group), its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def serve_command(port: int, *options: str) -> list[str]:
    """`convlab serve` on 127.0.0.1:`port` with warnings-only logs, plus `options` (--workers, --api-workers ...)."""
    command = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [*command, "--log-level", "warning", *options]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[LiveServer]:
    state_dir = tmp_path_factory.mktemp("live")
    port = free_port()
    env = serve_env(state_dir, data_dir, CONVLAB_EVENTS_POLL_SECONDS="0.2", CONVLAB_POLL_SECONDS="0.2")
    log = state_dir / "serve.log"
    process = launch(serve_command(port, "--workers", "1"), env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield LiveServer(url, state_dir, log)
    finally:
        stop(process)
