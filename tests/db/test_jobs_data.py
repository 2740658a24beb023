"""The job data functions on a real database: create, list, cancel, delete, events, history, checkpoints."""

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, NotFound
from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.storage import jobs
from service.storage.db import make_engine
from service.storage.orm import Checkpoint, EpochMetric, Job, JobEvent, LossPoint
from service.training import Checkpoint as TrainingCheckpoint
from service.training import EpochRecord, StepRecord
from service.worker.attempts import record_checkpoint, record_epoch
from service.worker.leases import Lease, claim_next_job, finish_job, register_worker, touch_worker

SPEC = JobRequest(architecture="bn_lenet", dataset="synthetic", epochs=3, batch_size=32).resolve()


def _epoch(epoch: int, test_acc: float) -> EpochRecord:
    return EpochRecord(epoch, 1.0 / epoch, 0.5, 1.1 / epoch, test_acc, 0.1, 1.0, 100.0)


def _claim(session: Session, worker_id: str = "w1") -> Lease:
    claimed = claim_next_job(session, worker_id=worker_id, lease_seconds=30, max_lost_leases=3)
    assert claimed is not None
    session.commit()
    return claimed[1]


def _train_epochs(factory: sessionmaker[Session], accuracies: list[float], keep: int = 3) -> Lease:
    with factory() as session:
        job = jobs.create_job(session, spec=SPEC)
        session.commit()
        lease = _claim(session)
        assert lease.job_id == job.id
    for epoch, acc in enumerate(accuracies, start=1):
        points = [
            StepRecord(step=epoch * 2 - 1 + i, epoch=epoch, examples_seen=32 * (epoch * 2 + i), loss=1.0)
            for i in (0, 1)
        ]
        record = _epoch(epoch, acc)
        with factory() as session:
            record_epoch(session, lease, record=record, points=points)
            session.commit()
        data = f"weights after epoch {epoch}".encode()
        with factory() as session:
            record_checkpoint(
                session, lease, checkpoint=TrainingCheckpoint(epoch, epoch * 2, data, record), points=[], keep=keep
            )
            session.commit()
    return lease


def test_create_job_stores_the_resolved_spec_queued_with_an_event(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        job = jobs.create_job(session, spec=SPEC, priority=3)
        session.commit()
    with session_factory() as session:
        stored = jobs.get_job(session, job.id)
        assert stored.status is JobStatus.queued
        assert stored.priority == 3
        assert stored.spec["optimizer"]["lr"] == 1.0  # the book's rate for bn_lenet
        assert stored.spec["resize"] == 28
        assert stored.created_at.tzinfo is not None
        assert [e.payload["status"] for e in jobs.list_events(session, job.id)] == ["queued"]


def test_get_job_raises_not_found_for_unknown_id(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, pytest.raises(NotFound):
        jobs.get_job(session, 12345)


def test_list_jobs_is_newest_first_paginated_and_filtered(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        ids = [jobs.create_job(session, spec=SPEC).id for _ in range(5)]
        session.commit()
        _claim(session)
        page, total = jobs.list_jobs(session, limit=2, offset=1)
        assert total == 5
        assert [j.id for j in page] == [ids[3], ids[2]]
        running, running_total = jobs.list_jobs(session, status=JobStatus.running)
        assert running_total == 1 and [j.id for j in running] == [ids[0]]


def test_cancel_of_queued_job_is_immediate(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        job = jobs.create_job(session, spec=SPEC)
        session.commit()
        jobs.request_cancel(session, job)
        session.commit()
        assert job.status is JobStatus.cancelled and job.finished_at is not None
        assert claim_next_job(session, worker_id="w", lease_seconds=30, max_lost_leases=3) is None


def test_cancel_of_running_job_sets_the_flag_only(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        job = jobs.create_job(session, spec=SPEC)
        session.commit()
        _claim(session)
        jobs.request_cancel(session, jobs.get_job(session, job.id))
        session.commit()
        assert job.status is JobStatus.running and job.cancel_requested and job.finished_at is None
        assert [e.payload["status"] for e in jobs.list_events(session, job.id)] == ["queued", "running"]


def test_cancel_of_finished_job_conflicts(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        jobs.create_job(session, spec=SPEC)
        session.commit()
        lease = _claim(session)
        job = finish_job(session, lease, status=JobStatus.succeeded, reason="done")
        session.commit()
        with pytest.raises(Conflict):
            jobs.request_cancel(session, job)


def test_delete_finished_job_removes_history_and_checkpoints(session_factory: sessionmaker[Session]) -> None:
    lease = _train_epochs(session_factory, [0.5, 0.6, 0.7])
    with session_factory() as session:
        finish_job(session, lease, status=JobStatus.succeeded, reason="done")
        session.commit()
        jobs.delete_job(session, jobs.get_job(session, lease.job_id))
        session.commit()
        for table in (Job, JobEvent, EpochMetric, LossPoint, Checkpoint):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_delete_unfinished_job_conflicts(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        job = jobs.create_job(session, spec=SPEC)
        session.commit()
        with pytest.raises(Conflict):
            jobs.delete_job(session, job)


def test_list_events_after_id_returns_only_later_events(session_factory: sessionmaker[Session]) -> None:
    lease = _train_epochs(session_factory, [0.5, 0.6, 0.7])
    with session_factory() as session:
        events = jobs.list_events(session, lease.job_id)
        assert [e.kind for e in events] == ["status", "status", "epoch", "epoch", "epoch"]
        assert [e.payload.get("epoch") for e in events[2:]] == [1, 2, 3]
        later = jobs.list_events(session, lease.job_id, after_id=events[2].id)
        assert [e.id for e in later] == [e.id for e in events[3:]]


def test_history_has_steps_and_epochs_in_order(session_factory: sessionmaker[Session]) -> None:
    lease = _train_epochs(session_factory, [0.5, 0.6, 0.7])
    with session_factory() as session:
        history = jobs.get_history(session, lease.job_id)
        assert [p.step for p in history.steps] == [1, 2, 3, 4, 5, 6]
        assert [e.epoch for e in history.epochs] == [1, 2, 3]


def test_read_history_gives_the_stored_records_and_thins_them(session_factory: sessionmaker[Session]) -> None:
    lease = _train_epochs(session_factory, [0.5, 0.6, 0.7])
    with session_factory() as session:
        full, recorded = jobs.read_history(session, lease.job_id)
        assert full == jobs.get_history(session, lease.job_id).records() and recorded == 6
        thin, recorded = jobs.read_history(session, lease.job_id, max_points=4)
        assert recorded == 6 and len(thin.steps) <= 4 and thin.epochs == full.epochs
        assert (thin.steps[0], thin.steps[-1]) == (full.steps[0], full.steps[-1])
        losses = [p.loss for p in full.steps]
        assert {min(losses), max(losses)} <= {p.loss for p in thin.steps}


def test_checkpoints_keep_the_last_k_and_the_best(session_factory: sessionmaker[Session]) -> None:
    lease = _train_epochs(session_factory, [0.9, 0.6, 0.7, 0.8], keep=2)
    with session_factory() as session:
        assert [c.epoch for c in jobs.list_checkpoints(session, lease.job_id)] == [1, 3, 4]
        best = jobs.get_checkpoint(session, lease.job_id)
        assert best.epoch == 1 and best.data == b"weights after epoch 1"
        assert best.sha256 == hashlib.sha256(best.data).hexdigest() and best.size == len(best.data)
        assert jobs.get_checkpoint(session, lease.job_id, epoch=3).data == b"weights after epoch 3"
        with pytest.raises(NotFound):
            jobs.get_checkpoint(session, lease.job_id, epoch=2)


def test_checkpoint_of_an_epoch_is_its_end_not_a_later_mid_epoch_stop(session_factory: sessionmaker[Session]) -> None:
    lease = _train_epochs(session_factory, [0.5])
    with session_factory() as session:
        stop = TrainingCheckpoint(1, 3, b"stopped in epoch 2", None)  # one completed epoch, one step into the next
        record_checkpoint(session, lease, checkpoint=stop, points=[], keep=3)
        session.commit()
        assert [c.step for c in jobs.list_checkpoints(session, lease.job_id)] == [2, 3]
        assert jobs.get_checkpoint(session, lease.job_id, epoch=1).data == b"weights after epoch 1"


def test_get_checkpoint_of_job_without_one_conflicts(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        job = jobs.create_job(session, spec=SPEC)
        session.commit()
        with pytest.raises(Conflict):
            jobs.get_checkpoint(session, job.id)


def test_recent_workers_lists_only_workers_seen_lately(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        register_worker(session, worker_id="old", hostname="h", pid=1)
        register_worker(session, worker_id="new", hostname="h", pid=2)
        session.commit()
        session.execute(text("UPDATE workers SET last_seen = :t WHERE id = 'old'"), {"t": "2000-01-01 00:00:00"})
        touch_worker(session, "new", current_job_id=None)
        session.commit()
        assert [w.id for w in jobs.recent_workers(session, within_seconds=60)] == ["new"]


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert (connection.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 1000
    finally:
        engine.dispose()
