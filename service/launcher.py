"""Worker processes: `convlab worker --devices cuda:0,cuda:1` (or `all`), one worker pinned to each device; the
workers `convlab serve` starts and stops; a worker that stops when its parent is gone.

Each child is a plain `convlab worker` whose CONVLAB_DEVICE names its device, so it registers that device's
capabilities and trains only there. The launcher waits for them; SIGTERM/SIGINT are passed on, and each child
checkpoints and requeues its job as a lone worker would.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

import torch

from service.errors import InvalidInput

log = logging.getLogger(__name__)
STOP_SECONDS = 60.0


def parse_devices(spec: str) -> list[str]:
    """The devices named by `spec`: a comma-separated list (cpu, cuda:N), or `all` for every GPU here."""
    if spec.strip() == "all":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidInput("--devices all: this host has no CUDA device (start a plain `convlab worker`)")
        return [f"cuda:{index}" for index in range(count)]
    devices = [name.strip() for name in spec.split(",") if name.strip()]
    if not devices:
        raise InvalidInput("--devices: name at least one device (cuda:0,cuda:1 or all)")
    for name in devices:
        _check_device(name)
    return devices


def _check_device(name: str) -> None:
    if name == "cpu":
        return
    kind, _, index = name.partition(":")
    if kind != "cuda" or not index.isdigit():
        raise InvalidInput(f"--devices: {name!r} is not a device; use cpu or cuda:N")
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(index) >= available:
        raise InvalidInput(f"--devices: {name} does not exist here ({available} CUDA device(s))")


def start_pinned_worker(device: str, *, burst: bool) -> "subprocess.Popen[bytes]":
    """Start `convlab worker` on `device` as a child process (migrations are the launcher's job)."""
    command = [sys.executable, "-m", "service.cli", "worker", "--no-migrate", "--parent-pid", str(os.getpid())]
    env = {**os.environ, "CONVLAB_DEVICE": device}
    return subprocess.Popen([*command, *(["--burst"] if burst else [])], env=env)


def run_pinned_workers(devices: list[str], *, burst: bool = False) -> int:
    """Run one worker per device until they exit (or a signal stops them); 0 if every one exited cleanly."""
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping %d worker(s)", signal.Signals(signum).name, len(children))
        stopping.set()

    children = [start_pinned_worker(device, burst=burst) for device in devices]
    log.info(
        "started %d worker(s): %s",
        len(children),
        ", ".join(f"{d} (pid {c.pid})" for d, c in zip(devices, children, strict=True)),
    )
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stopping.wait(0.5) and any(child.poll() is None for child in children):
        pass
    stop_worker_processes(children, timeout=STOP_SECONDS)
    return 0 if all(child.returncode == 0 for child in children) else 1


def start_worker_process() -> "subprocess.Popen[bytes]":
    """Start `convlab worker` as a child process (same environment, hence the same settings)."""
    # A session of its own: a Ctrl-C at the terminal reaches only `serve`, which then stops each worker once.
    command = [sys.executable, "-m", "service.cli", "worker", "--no-migrate", "--parent-pid", str(os.getpid())]
    return subprocess.Popen(command, start_new_session=True)


def stop_worker_processes(processes: Sequence["subprocess.Popen[bytes]"], *, timeout: float) -> None:
    """Ask each worker to stop (SIGTERM), wait up to `timeout` seconds in all, then kill the stragglers."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout  # one wait for all: they stop side by side
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %d did not stop in %.0f s; killing it", process.pid, timeout)
            process.kill()
            process.wait()


def watch_parent(parent_pid: int, shutdown: threading.Event) -> None:
    """Set `shutdown` once this process's parent is no longer `parent_pid` (it died; we were re-parented)."""
    while not shutdown.wait(1.0):
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone: stopping", parent_pid)
            shutdown.set()
