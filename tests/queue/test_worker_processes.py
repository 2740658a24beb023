"""Real `convlab worker` processes on a real database: crash recovery, exactly-once, cancel, shutdown."""

import signal
from pathlib import Path

import torch
from sqlalchemy.orm import Session, sessionmaker

from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.storage import jobs
from service.storage.db import begin_write
from tests.queue.processes import (
    job_state,
    model_tensors,
    start_worker,
    status_events,
    stop,
    submit,
    wait_for,
    wait_for_status,
    worker_env,
)

# Two epochs of 256 small steps: long enough to kill a worker in the middle of the second one at any speed,
# given that progress (and loss points) reach the database twice a second; the test kills at the first such write.
RESUMABLE = JobRequest(
    architecture="bn_lenet",
    dataset="synthetic",
    epochs=2,
    batch_size=16,
    optimizer={"name": "sgd", "lr": 0.1},
    test_subset=256,
    seed=7,
).resolve()
STEPS_PER_EPOCH = 256  # the synthetic training set has 4096 images
# Tiny jobs for the exactly-once test: one epoch of 4 steps each.
TINY = JobRequest(
    architecture="bn_lenet", dataset="synthetic", epochs=1, batch_size=32, train_subset=128, test_subset=64
).resolve()
# A job long enough to be stopped while it runs.
LONG = RESUMABLE.model_copy(update={"epochs": 20})


def _history_is_contiguous(factory: sessionmaker[Session], job_id: int, *, epochs: int, steps: int) -> None:
    with factory() as session:
        history = jobs.get_history(session, job_id)
    assert [row.epoch for row in history.epochs] == list(range(1, epochs + 1))
    assert [point.step for point in history.steps] == list(range(1, steps + 1))


def test_sigkilled_worker_is_replaced_and_the_job_resumes_to_identical_weights(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    env = worker_env(db_url, tmp_path, data_dir)
    victim = submit(session_factory, RESUMABLE, priority=1)
    reference = submit(session_factory, RESUMABLE)
    first = start_worker(env, tmp_path)
    try:
        wait_for(lambda: job_state(session_factory, victim).step > STEPS_PER_EPOCH, "the second epoch")
    finally:
        first.kill()  # SIGKILL: no checkpoint, no requeue, the lease just runs out
    first.wait()
    with session_factory() as session:
        dead = jobs.get_job(session, victim)
        assert dead.status is JobStatus.running and dead.attempt == 1
        assert [c.step for c in jobs.list_checkpoints(session, victim)] == [STEPS_PER_EPOCH]
        assert max(p.step for p in jobs.get_history(session, victim).steps) > STEPS_PER_EPOCH  # mid-epoch
    second = start_worker(env, tmp_path)
    try:
        resumed = wait_for_status(session_factory, victim, JobStatus.succeeded, JobStatus.failed)
        baseline = wait_for_status(session_factory, reference, JobStatus.succeeded, JobStatus.failed)
    finally:
        assert stop(second) == 0
    assert (resumed.status, resumed.attempt, resumed.lost_leases) == (JobStatus.succeeded, 2, 1)
    assert baseline.status is JobStatus.succeeded and baseline.attempt == 1
    _history_is_contiguous(session_factory, victim, epochs=2, steps=2 * STEPS_PER_EPOCH)
    with session_factory() as session:
        got = jobs.get_history(session, victim)
        want = jobs.get_history(session, reference)
        assert [p.loss for p in got.steps] == [p.loss for p in want.steps]
        assert [(e.train_loss, e.test_acc) for e in got.epochs] == [(e.train_loss, e.test_acc) for e in want.epochs]
        assert {p.attempt for p in got.steps if p.step > STEPS_PER_EPOCH} == {2}
        final = model_tensors(jobs.get_checkpoint(session, victim, epoch=2).data)
        expected = model_tensors(jobs.get_checkpoint(session, reference, epoch=2).data)
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[name], expected[name]) for name in final)


def test_four_workers_complete_twenty_jobs_exactly_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    job_ids = [submit(session_factory, TINY.model_copy(update={"seed": n})) for n in range(20)]
    env = worker_env(db_url, tmp_path, data_dir)
    workers = [start_worker(env, tmp_path, "--burst") for _ in range(4)]
    assert [process.wait(timeout=300) for process in workers] == [0, 0, 0, 0]
    claimers = set()
    for job_id in job_ids:
        job = job_state(session_factory, job_id)
        assert (job.status, job.attempt, job.lost_leases) == (JobStatus.succeeded, 1, 0)
        claims = [e for e in status_events(session_factory, job_id) if e["status"] == "running"]
        assert len(claims) == 1, f"job {job_id} was claimed {len(claims)} times"
        claimers.add(claims[0]["worker"])
        _history_is_contiguous(session_factory, job_id, epochs=1, steps=4)
    assert len(claimers) >= 2  # the workers really ran side by side


def test_cancel_of_running_job_stops_it_and_keeps_its_checkpoints(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    job_id = submit(session_factory, LONG)
    worker = start_worker(worker_env(db_url, tmp_path, data_dir), tmp_path)
    try:
        wait_for(lambda: job_state(session_factory, job_id).step > 0, "training to start")
        with session_factory() as session:
            begin_write(session)  # read-then-write while a worker writes: take SQLite's lock first
            jobs.request_cancel(session, jobs.get_job(session, job_id))
            session.commit()
        job = wait_for_status(session_factory, job_id, JobStatus.cancelled, JobStatus.failed, JobStatus.succeeded)
        assert worker.poll() is None  # the worker goes on to the next job
    finally:
        assert stop(worker) == 0
    assert job.status is JobStatus.cancelled and job.error is None
    with session_factory() as session:
        checkpoints = jobs.list_checkpoints(session, job_id)
    assert checkpoints and checkpoints[-1].step == job.step
    assert status_events(session_factory, job_id)[-1]["status"] == "cancelled"


def test_sigterm_requeues_the_job_with_a_checkpoint_without_charging_it(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    job_id = submit(session_factory, LONG)
    worker = start_worker(worker_env(db_url, tmp_path, data_dir), tmp_path)
    wait_for(lambda: job_state(session_factory, job_id).step > 0, "training to start")
    assert stop(worker, signal.SIGTERM) == 0
    job = job_state(session_factory, job_id)
    assert (job.status, job.attempt, job.lost_leases, job.lease_owner) == (JobStatus.queued, 1, 0, None)
    assert status_events(session_factory, job_id)[-1]["status"] == "queued"
    with session_factory() as session:
        last = jobs.list_checkpoints(session, job_id)[-1]
    assert last.step == job.step  # the next claim resumes exactly where this one stopped
    _history_is_contiguous(session_factory, job_id, epochs=job.step // STEPS_PER_EPOCH, steps=job.step)
