"""Claims, leases and fencing on a real database, driven in-process through the queue functions."""

import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.errors import LeaseLost
from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.storage import jobs
from service.storage.db import begin_write
from service.storage.orm import Checkpoint, EpochMetric, LossPoint
from service.training import Checkpoint as TrainingCheckpoint
from service.training import EpochRecord, RunInfo, StepRecord
from service.worker.attempts import record_checkpoint, record_epoch, record_progress, record_start, start_attempt
from service.worker.heartbeat import Heartbeat
from service.worker.leases import Lease, claim_next_job, finish_job, renew_lease, requeue_job
from tests.queue.processes import job_state, submit

SPEC = JobRequest(architecture="bn_lenet", dataset="synthetic", epochs=2, batch_size=32).resolve()
SHORT_LEASE = 0.2
RECORD = EpochRecord(1, 1.0, 0.5, 1.0, 0.5, 0.1, 1.0, 100.0)


def _claim(factory: sessionmaker[Session], worker: str, *, lease: float = 30.0, max_lost: int = 3) -> Lease | None:
    with factory() as session:
        claimed = claim_next_job(session, worker_id=worker, lease_seconds=lease, max_lost_leases=max_lost)
        session.commit()
    return claimed[1] if claimed else None


def _count(factory: sessionmaker[Session], table: type) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _run_info() -> RunInfo:
    return RunInfo(
        "bn_lenet",
        "synthetic",
        "0" * 64,
        64,
        64,
        ("a",),
        1,
        10,
        28,
        2,
        4,
        2,
        1,
        "cpu",
        None,
        False,
        False,
        "t",
        "tv",
        0,
    )


def test_claims_take_highest_priority_first_then_oldest(session_factory: sessionmaker[Session]) -> None:
    low = submit(session_factory, SPEC, priority=0)
    high_old = submit(session_factory, SPEC, priority=5)
    high_new = submit(session_factory, SPEC, priority=5)
    order = [_claim(session_factory, "w") for _ in range(4)]
    assert [lease.job_id if lease else None for lease in order] == [high_old, high_new, low, None]


def test_live_lease_is_not_claimed_again(session_factory: sessionmaker[Session]) -> None:
    submit(session_factory, SPEC)
    assert _claim(session_factory, "a") is not None
    assert _claim(session_factory, "b") is None


def test_expired_lease_is_claimed_with_the_next_attempt(session_factory: sessionmaker[Session]) -> None:
    job_id = submit(session_factory, SPEC)
    first = _claim(session_factory, "a", lease=SHORT_LEASE)
    time.sleep(SHORT_LEASE * 2)
    second = _claim(session_factory, "b")
    assert first is not None and second is not None
    assert (second.job_id, second.attempt) == (job_id, first.attempt + 1)
    job = job_state(session_factory, job_id)
    assert (job.lease_owner, job.lost_leases, job.status) == ("b", 1, JobStatus.running)


def test_worker_whose_lease_was_taken_over_cannot_write(session_factory: sessionmaker[Session]) -> None:
    job_id = submit(session_factory, SPEC)
    old = _claim(session_factory, "a", lease=SHORT_LEASE)
    time.sleep(SHORT_LEASE * 2)
    new = _claim(session_factory, "b")
    assert old is not None and new is not None
    before = job_state(session_factory, job_id)
    point = [StepRecord(step=1, epoch=1, examples_seen=32, loss=2.0)]
    checkpoint = TrainingCheckpoint(1, 2, b"stale weights", RECORD)
    writes: list[Callable[[Session], object]] = [
        lambda s: renew_lease(s, old, lease_seconds=30),
        lambda s: record_start(s, old, info=_run_info(), convlab_version="x", environment={"device": "cpu"}),
        lambda s: record_progress(s, old, points=point, epoch=1, step=1, images_per_sec=1.0, eta_seconds=1.0),
        lambda s: record_epoch(s, old, record=RECORD, points=point),
        lambda s: record_checkpoint(s, old, checkpoint=checkpoint, points=point, keep=3),
        lambda s: finish_job(s, old, status=JobStatus.succeeded, reason="stale"),
        lambda s: requeue_job(s, old, reason="stale"),
        lambda s: start_attempt(s, old),
    ]
    for write in writes:
        with session_factory() as session:
            with pytest.raises(LeaseLost):
                write(session)
            session.commit()  # even a commit after the refusal must store nothing
    after = job_state(session_factory, job_id)
    assert (after.status, after.attempt, after.lease_owner, after.step) == (JobStatus.running, new.attempt, "b", 0)
    assert after.lease_expires_at == before.lease_expires_at and after.torch_version is None
    assert [_count(session_factory, t) for t in (LossPoint, EpochMetric, Checkpoint)] == [0, 0, 0]


def test_job_that_keeps_losing_its_worker_ends_failed(session_factory: sessionmaker[Session]) -> None:
    job_id = submit(session_factory, SPEC)
    for worker in ("a", "b", "c"):
        assert _claim(session_factory, worker, lease=SHORT_LEASE) is not None
        time.sleep(SHORT_LEASE * 2)
    assert _claim(session_factory, "d") is None  # the third loss ends the job instead of a fourth attempt
    job = job_state(session_factory, job_id)
    assert job.status is JobStatus.failed and job.lost_leases == 3
    assert job.error is not None and "lost its worker 3 times" in job.error


def test_requeue_does_not_count_a_lost_worker(session_factory: sessionmaker[Session]) -> None:
    job_id = submit(session_factory, SPEC)
    for worker in ("a", "b", "c", "d"):
        lease = _claim(session_factory, worker)
        assert lease is not None
        with session_factory() as session:
            requeue_job(session, lease, reason="shutdown")
            session.commit()
    job = job_state(session_factory, job_id)
    assert (job.status, job.lost_leases, job.attempt, job.lease_owner) == (JobStatus.queued, 0, 4, None)


def test_cancelled_job_whose_worker_died_ends_cancelled(session_factory: sessionmaker[Session]) -> None:
    job_id = submit(session_factory, SPEC)
    assert _claim(session_factory, "a", lease=SHORT_LEASE) is not None
    with session_factory() as session:
        begin_write(session)
        jobs.request_cancel(session, jobs.get_job(session, job_id))
        session.commit()
    time.sleep(SHORT_LEASE * 2)
    assert _claim(session_factory, "b") is None
    assert job_state(session_factory, job_id).status is JobStatus.cancelled


def test_heartbeat_thread_keeps_the_lease_while_the_caller_is_busy(session_factory: sessionmaker[Session]) -> None:
    job_id = submit(session_factory, SPEC)
    lease_seconds = 1.0
    lease = _claim(session_factory, "a", lease=lease_seconds)
    assert lease is not None
    with Heartbeat(session_factory, lease, lease_seconds=lease_seconds, interval=0.1) as heartbeat:
        time.sleep(lease_seconds * 2.5)  # a long batch: this thread does nothing, the heartbeat thread renews
        assert _claim(session_factory, "b") is None
        with session_factory() as session:
            begin_write(session)
            jobs.request_cancel(session, jobs.get_job(session, job_id))
            session.commit()
        assert heartbeat.cancel_requested.wait(timeout=30)
    assert not heartbeat.lost.is_set()
