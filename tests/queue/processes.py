"""Helpers for tests that run real `convlab worker` processes against a real database."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load as load_safetensors
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.jobspec.spec import JobSpec
from service.jobspec.status import JobStatus
from service.storage import jobs
from service.storage.orm import Job, JobEvent

T = TypeVar("T")
LEASE_SECONDS = 2.0
WAIT_SECONDS = 120.0  # generous: the machine is shared; nothing here asserts on time


def worker_env(db_url: str, state_dir: Path, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a worker process: our database, real data, short leases, one torch thread."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVLAB_")}
    env.update(
        CONVLAB_DATABASE_URL=db_url,
        CONVLAB_STATE_DIR=str(state_dir),
        CONVLAB_DATA_DIR=str(data_dir),
        CONVLAB_LEASE_SECONDS=str(LEASE_SECONDS),
        CONVLAB_POLL_SECONDS="0.2",
        CONVLAB_DEVICE="cpu",
        OMP_NUM_THREADS="1",  # deterministic, and four workers do not fight over two cores
    )
    env.update({f"CONVLAB_{key.upper()}": value for key, value in settings.items()})
    return env


def start_worker(env: dict[str, str], log_dir: Path, *args: str) -> "subprocess.Popen[bytes]":
    """Start `python -m service.cli worker` with its output in a log file under `log_dir`."""
    log = (log_dir / f"worker-{time.monotonic_ns()}.log").open("wb")
    # --parent-pid: should this test process die, its workers stop instead of training on as orphans
    command = [sys.executable, "-m", "service.cli", "worker", "--parent-pid", str(os.getpid()), *args]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(process: "subprocess.Popen[bytes]", sig: int = signal.SIGTERM) -> int:
    """Send `sig` if the process still runs, and return its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=WAIT_SECONDS)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def submit(factory: sessionmaker[Session], spec: JobSpec, *, priority: int = 0) -> int:
    """Queue a job and return its id."""
    with factory() as session:
        job = jobs.create_job(session, spec=spec, priority=priority)
        session.commit()
        return job.id


def job_state(factory: sessionmaker[Session], job_id: int) -> Job:
    """A fresh read of a job."""
    with factory() as session:
        return jobs.get_job(session, job_id)


def wait_for_status(factory: sessionmaker[Session], job_id: int, *statuses: JobStatus) -> Job:
    """Wait until the job has one of `statuses`."""

    def finished() -> Job | None:
        job = job_state(factory, job_id)
        return job if job.status in statuses else None

    return wait_for(finished, f"job {job_id} to become {'/'.join(s.value for s in statuses)}")


def status_events(factory: sessionmaker[Session], job_id: int) -> list[dict[str, object]]:
    """The payloads of a job's status events, in order."""
    with factory() as session:
        query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "status").order_by(JobEvent.id)
        return [event.payload for event in session.scalars(query)]


def model_tensors(data: bytes) -> dict[str, torch.Tensor]:
    """The model weights in a checkpoint's safetensors bytes."""
    return {name: tensor for name, tensor in load_safetensors(data).items() if name.startswith("model.")}
