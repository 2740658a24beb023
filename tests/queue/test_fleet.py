"""A mixed fleet of real `convlab worker` processes: device-aware claims, waiting reasons, pinned workers,
and a distributed job whose rank is killed.

There is no GPU here: a CUDA-capable worker is simulated by CONVLAB_SIMULATE_DEVICE=cuda (it advertises cuda and
trains on its CPU), which is all routing needs.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.main import create_app
from service.storage import jobs
from service.storage.orm import Worker
from tests.api.conftest import make_settings
from tests.queue.processes import (
    WAIT_SECONDS,
    job_state,
    start_worker,
    status_events,
    stop,
    submit,
    wait_for,
    wait_for_status,
    worker_env,
)

TINY = JobRequest(
    architecture="lenet", dataset="synthetic", epochs=1, batch_size=32, train_subset=128, test_subset=64
).resolve()
# Two epochs of 64 steps across 2 processes: long enough to kill a rank mid-way through the second epoch.
DISTRIBUTED = JobRequest(
    architecture="bn_lenet",
    dataset="synthetic",
    epochs=2,
    batch_size=16,
    train_subset=1024,
    test_subset=64,
    optimizer={"name": "sgd", "lr": 0.1},
    distributed={"processes": 2},
).resolve()
STEPS_PER_EPOCH = 64
# Process-heavy tests run on SQLite only (the claim rule itself is checked on both backends by the routing test).
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _workers(factory: sessionmaker[Session]) -> list[Worker]:
    with factory() as session:
        return list(session.scalars(select(Worker).order_by(Worker.started_at)))


def _claimer(factory: sessionmaker[Session], job_id: int) -> object:
    claims = [e for e in status_events(factory, job_id) if e["status"] == "running"]
    return claims[-1]["worker"]


def _waiting_reason(db_url: str, tmp_path: Path, data_dir: Path, job_id: int) -> str | None:
    settings = make_settings(tmp_path, data_dir, database_url=db_url)  # auth off, as on a loopback address
    with TestClient(create_app(settings)) as client:
        reason: str | None = client.get(f"/jobs/{job_id}").json()["waiting_reason"]
        return reason


def test_cpu_workers_leave_a_cuda_job_queued_saying_why_and_a_cuda_worker_takes_it(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    cuda_job = submit(session_factory, TINY.model_copy(update={"device": "cuda"}), priority=1)
    cpu_job = submit(session_factory, TINY.model_copy(update={"device": "cpu"}))
    env = worker_env(db_url, tmp_path, data_dir)
    cpu_worker = start_worker(env, tmp_path)
    try:
        wait_for_status(session_factory, cpu_job, JobStatus.succeeded)
        assert job_state(session_factory, cuda_job).status is JobStatus.queued  # passed over despite its priority
        assert _waiting_reason(db_url, tmp_path, data_dir, cuda_job) == "waiting for a cuda worker; 1 cpu worker alive"
        cuda_worker = start_worker(worker_env(db_url, tmp_path, data_dir, simulate_device="cuda"), tmp_path)
        try:
            done = wait_for_status(session_factory, cuda_job, JobStatus.succeeded, JobStatus.failed)
        finally:
            assert stop(cuda_worker) == 0
    finally:
        assert stop(cpu_worker) == 0
    assert (done.status, done.attempt) == (JobStatus.succeeded, 1)
    kinds = {w.id: w.device_kind for w in _workers(session_factory)}
    assert sorted(kinds.values()) == ["cpu", "cuda"]
    assert kinds[str(_claimer(session_factory, cuda_job))] == "cuda"
    assert kinds[str(_claimer(session_factory, cpu_job))] == "cpu"


@sqlite_only
def test_worker_registers_its_device(session_factory: sessionmaker[Session], db_url: str, tmp_path: Path) -> None:
    worker = start_worker(worker_env(db_url, tmp_path, tmp_path), tmp_path)
    try:
        (registered,) = wait_for(lambda: _workers(session_factory), "the worker to register")
    finally:
        assert stop(worker) == 0
    assert registered.device_kind == "cpu" and registered.device_count == len(os.sched_getaffinity(0))
    assert registered.device_memory and registered.device_memory > 2**28 and registered.device_name


def _launcher(env: dict[str, str], log_dir: Path, devices: str) -> "subprocess.Popen[bytes]":
    log = (log_dir / f"launcher-{time.monotonic_ns()}.log").open("wb")
    command = [sys.executable, "-m", "service.cli", "worker", "--devices", devices]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


@sqlite_only
def test_devices_starts_one_pinned_worker_per_device_and_stops_them(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    launcher = _launcher(worker_env(db_url, tmp_path, data_dir), tmp_path, "cpu,cpu")
    try:
        workers = wait_for(lambda: len(_workers(session_factory)) == 2 and _workers(session_factory), "two workers")
    finally:
        assert stop(launcher) == 0
    assert len({w.pid for w in workers}) == 2 and launcher.pid not in {w.pid for w in workers}
    assert {w.device_kind for w in workers} == {"cpu"}


@sqlite_only
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a host without CUDA")
def test_devices_refuses_gpus_this_host_does_not_have(db_url: str, tmp_path: Path, data_dir: Path) -> None:
    for devices, message in [
        ("all", "--devices all: this host has no CUDA device"),
        ("cuda:1", "--devices: cuda:1 does not exist here (0 CUDA device(s))"),
        ("tpu:0", "--devices: 'tpu:0' is not a device; use cpu or cuda:N"),
    ]:
        launcher = _launcher(worker_env(db_url, tmp_path, data_dir), tmp_path, devices)
        assert launcher.wait(timeout=WAIT_SECONDS) == 2
        log = sorted(tmp_path.glob("launcher-*.log"))[-1].read_text()
        assert message in log


def _rank_pids(worker_pid: int) -> list[int]:
    """The worker's spawned ranks (its children running multiprocessing's spawn_main), lowest pid first."""
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    ranks = []
    for pid in map(int, children):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                ranks.append(pid)
        except FileNotFoundError:
            continue
    return sorted(ranks)


@sqlite_only
def test_killing_a_rank_mid_epoch_requeues_the_job_which_resumes_and_succeeds(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    job_id = submit(session_factory, DISTRIBUTED)
    worker = start_worker(worker_env(db_url, tmp_path, data_dir), tmp_path)
    try:
        wait_for(lambda: job_state(session_factory, job_id).step > STEPS_PER_EPOCH, "the second epoch")
        ranks = _rank_pids(worker.pid)
        assert len(ranks) == 2
        os.kill(ranks[-1], signal.SIGKILL)
        job = wait_for_status(session_factory, job_id, JobStatus.succeeded, JobStatus.failed)
        assert worker.poll() is None  # the worker itself lived on and ran the job again
    finally:
        assert stop(worker) == 0
    assert (job.status, job.attempt, job.lost_leases) == (JobStatus.succeeded, 2, 1)
    requeued = [e["reason"] for e in status_events(session_factory, job_id) if e["status"] == "queued"]
    assert requeued == ["submitted", "requeued: rank 1 of 2 failed (process 1 terminated with signal SIGKILL)"]
    with session_factory() as session:
        history = jobs.get_history(session, job_id)
        assert [e.epoch for e in history.epochs] == [1, 2]
        assert [p.step for p in history.steps] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
        assert {p.attempt for p in history.steps if p.step <= STEPS_PER_EPOCH} == {1}  # resumed from epoch 1
        assert {p.attempt for p in history.steps if p.step > STEPS_PER_EPOCH} == {2}


@sqlite_only
def test_sigterm_stops_a_distributed_job_with_a_checkpoint_and_requeues_it(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    job_id = submit(session_factory, DISTRIBUTED)
    worker = start_worker(worker_env(db_url, tmp_path, data_dir), tmp_path)
    wait_for(lambda: job_state(session_factory, job_id).step > 0, "training to start")
    assert stop(worker, signal.SIGTERM) == 0
    job = job_state(session_factory, job_id)
    assert (job.status, job.attempt, job.lost_leases) == (JobStatus.queued, 1, 0)
    with session_factory() as session:
        assert jobs.list_checkpoints(session, job_id)[-1].step == job.step  # rank 0 checkpointed where all stopped
