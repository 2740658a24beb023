"""What a new attempt leaves behind for readers: superseded epoch events are marked; old workers are forgotten."""

import time
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.storage.db import utcnow
from service.storage.orm import JobEvent, Worker
from service.training import Checkpoint as TrainingCheckpoint
from service.training import EpochRecord
from service.worker.attempts import record_checkpoint, record_epoch, start_attempt
from service.worker.leases import claim_next_job, register_worker
from tests.queue.processes import submit
from tests.queue.test_claims import SPEC

RECORD = EpochRecord(1, 1.0, 0.5, 1.0, 0.5, 0.1, 1.0, 100.0)


def test_epoch_events_past_the_resume_point_are_marked_superseded(session_factory: sessionmaker[Session]) -> None:
    job_id = submit(session_factory, SPEC)
    with session_factory() as session:
        _, first = claim_next_job(session, worker_id="a", lease_seconds=0.2, max_lost_leases=3) or (None, None)
        session.commit()
        assert first is not None
        for epoch in (1, 2, 3):
            record_epoch(session, first, record=replace(RECORD, epoch=epoch), points=[])
            session.commit()
            if epoch == 1:
                record_checkpoint(session, first, checkpoint=TrainingCheckpoint(1, 10, b"w", RECORD), points=[], keep=3)
            session.commit()
    time.sleep(0.4)  # the first worker vanished: its lease runs out
    with session_factory() as session:
        claimed = claim_next_job(session, worker_id="b", lease_seconds=30, max_lost_leases=3)
        session.commit()
        assert claimed is not None
        second = claimed[1]
        resumed = start_attempt(session, second)
        session.commit()
        assert resumed is not None and resumed.epoch == 1
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "epoch"))
        marks = {e.payload["epoch"]: e.payload.get("superseded_by_attempt") for e in events}
    assert marks == {1: None, 2: second.attempt, 3: second.attempt}


def test_registering_a_worker_forgets_workers_unseen_for_the_retention(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        register_worker(session, worker_id="old", hostname="h", pid=1)
        register_worker(session, worker_id="recent", hostname="h", pid=2)
        session.get_one(Worker, "old").last_seen = utcnow() - timedelta(hours=2)
        session.get_one(Worker, "recent").last_seen = utcnow() - timedelta(minutes=5)
        session.commit()
        register_worker(session, worker_id="new", hostname="h", pid=3, retention_seconds=3600)
        session.commit()
        assert set(session.scalars(select(Worker.id))) == {"recent", "new"}
