"""`convlab serve` runs the API and its worker processes, and stops the workers cleanly when it exits."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.storage.orm import Worker
from tests.queue.processes import WAIT_SECONDS, job_state, submit, wait_for, worker_env

# Far longer than the test waits (it stops the server once training began): with 20 epochs, a server whose API
# took long to start (a fresh checkout without bytecode, a loaded machine) let its worker finish the job first.
LONG = JobRequest(architecture="bn_lenet", dataset="synthetic", epochs=500, batch_size=32, test_subset=256).resolve()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # serving does not depend on the backend
def test_serve_runs_the_api_with_a_worker_and_requeues_its_job_on_exit(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    job_id = submit(session_factory, LONG)
    port = _free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1"]
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(command, env=worker_env(db_url, tmp_path, data_dir), stdout=log, stderr=log)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/version"), "the API to answer")
        wait_for(lambda: job_state(session_factory, job_id).step > 0, "the embedded worker to train")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=WAIT_SECONDS) == 0
    with session_factory() as session:
        pids = [worker.pid for worker in session.scalars(select(Worker))]
    assert len(pids) == 1 and not _alive(pids[0])
    job = job_state(session_factory, job_id)
    assert (job.status, job.lost_leases) == (JobStatus.queued, 0)  # checkpointed and requeued, not abandoned
