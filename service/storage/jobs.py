"""Data functions for jobs and what they produced. They add and flush; the caller owns the session and commits."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker, undefer

from service.errors import Conflict, NotFound
from service.jobspec.spec import JobSpec
from service.jobspec.status import JobStatus
from service.records import History, StepRecord
from service.storage.db import begin_write, utcnow
from service.storage.orm import Checkpoint, EpochMetric, Job, JobEvent, LossPoint, SweepTrial, Worker
from service.training.downsample import minmax_indices


def add_event(session: Session, job: Job, *, kind: str, payload: dict[str, Any]) -> JobEvent:
    """Record an event of `job` at its current attempt."""
    event = JobEvent(job_id=job.id, attempt=job.attempt, kind=kind, payload=payload, created_at=utcnow())
    session.add(event)
    return event


def add_status_event(session: Session, job: Job, *, reason: str = "", **extra: Any) -> JobEvent:
    """Record that `job` moved to its current status, with the reason."""
    payload = {"status": job.status.value, "attempt": job.attempt, "reason": reason, **extra}
    return add_event(session, job, kind="status", payload=payload)


@dataclass(frozen=True)
class Owner:
    """Who submitted a job: a token (None with auth off) and the client's address."""

    token_id: int | None = None
    name: str | None = None
    address: str | None = None


def create_job(session: Session, *, spec: JobSpec, priority: int = 0, owner: Owner = Owner()) -> Job:
    """Queue a job for the resolved `spec`, stored as it is; higher priority runs first."""
    job = Job(
        owner_token_id=owner.token_id,
        owner_name=owner.name,
        client_address=owner.address,
        status=JobStatus.queued,
        spec=spec.model_dump(mode="json"),
        priority=priority,
        created_at=utcnow(),
        total_epochs=spec.epochs,
        device=spec.device,
        processes=spec.processes,
    )
    session.add(job)
    session.flush()
    add_status_event(session, job, reason="submitted")
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    """The job with `job_id`; NotFound if there is none."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def list_jobs(
    session: Session, *, status: JobStatus | None = None, sweep: int | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Job], int]:
    """A page of jobs, newest first, optionally with one status or of one sweep, and the total count matching."""
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    if sweep is not None:
        query = query.where(Job.id.in_(select(SweepTrial.job_id).where(SweepTrial.sweep_id == sweep)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset))
    return list(page), total


def begin_submission(session: Session, owner: Owner) -> int:
    """Start the transaction that queues a job for `owner`, serialized with the owner's other submissions (the
    SQLite write lock; a transaction-scoped advisory lock on PostgreSQL), and return the owner's active jobs."""
    begin_write(session)
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"submit:{owner.token_id}:{owner.address}".encode()).digest()[:8], "big")
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - 2**63})
    return count_active_jobs(session, owner_token_id=owner.token_id, client_address=owner.address)


def count_active_jobs(session: Session, *, owner_token_id: int | None, client_address: str | None) -> int:
    """Queued plus running jobs of a token, or (no token: auth is off) of a client address."""
    owner = Job.owner_token_id == owner_token_id if owner_token_id is not None else Job.client_address == client_address
    active = Job.status.in_([JobStatus.queued, JobStatus.running])
    return session.scalar(select(func.count()).select_from(Job).where(owner, active)) or 0


def request_cancel(session: Session, job: Job) -> Job:
    """Cancel a queued job now, or flag a running one to stop at its next batch; Conflict if finished."""
    session.refresh(job, with_for_update=_for_update(session))
    if job.status.finished:
        raise Conflict(
            f"job {job.id} has already finished ({job.status.value}); only a queued or running job can be cancelled"
        )
    if job.status is JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        add_status_event(session, job, reason="cancelled while queued")
    else:
        job.cancel_requested = True
    session.flush()
    return job


def cancel_job(session: Session, job_id: int) -> Job:
    """Cancel job `job_id` (see `request_cancel`) in a transaction that holds the write lock from the start."""
    begin_write(session)  # read-then-write: take SQLite's write lock first (docs/operations.md)
    return request_cancel(session, get_job(session, job_id))


def remove_job(session: Session, job_id: int) -> None:
    """Delete finished job `job_id` (see `delete_job`) in a transaction that holds the write lock from the start."""
    begin_write(session)
    delete_job(session, get_job(session, job_id))


def delete_job(session: Session, job: Job) -> None:
    """Delete a finished job with its events, history and checkpoints; Conflict if it has not finished."""
    if not job.status.finished:
        raise Conflict(f"job {job.id} is {job.status.value}; cancel it and wait for it to finish first")
    session.delete(job)  # the foreign keys' ON DELETE CASCADE removes its rows in the other tables
    session.flush()


def list_events(session: Session, job_id: int, *, after_id: int = 0, limit: int | None = None) -> list[JobEvent]:
    """Events of a job with id greater than `after_id` (an SSE Last-Event-ID), oldest first."""
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id).order_by(JobEvent.id)
    return list(session.scalars(query.limit(limit)))


@dataclass(frozen=True)
class Poll:
    """What a live follower of a job sees at one moment."""

    events: list[tuple[int, str, dict[str, Any]]]  # (id, kind, payload), oldest first
    job: dict[str, Any] | None  # the job's status and progress; None once it was deleted
    finished: bool


PROGRESS_FIELDS = ("status", "attempt", "epoch", "total_epochs", "step", "total_steps", "images_per_sec", "eta_seconds")


def poll_job(factory: sessionmaker[Session], job_id: int, *, after_id: int, limit: int) -> Poll:
    """Read, in one short transaction, the job's progress and up to `limit` of its events after `after_id`."""
    with factory() as session:
        job = session.get(Job, job_id)
        if job is None:
            return Poll([], None, True)
        events = list_events(session, job_id, after_id=after_id, limit=limit)
        progress = {k: getattr(job, k) for k in PROGRESS_FIELDS} | {"status": job.status.value}
        drained = len(events) < limit
        return Poll([(e.id, e.kind, e.payload) for e in events], progress, job.status.finished and drained)


@dataclass(frozen=True)
class StoredHistory:
    """A job's history rows in step and epoch order, each with the attempt that wrote it."""

    steps: list[LossPoint]
    epochs: list[EpochMetric]

    def records(self) -> History:
        """The same history as the training engine's records (what the API and the plots use)."""
        return History(steps=[p.to_record() for p in self.steps], epochs=[e.to_record() for e in self.epochs])


def get_history(session: Session, job_id: int) -> StoredHistory:
    """The loss points and epoch metrics of a job, in step and epoch order; NotFound if there is no such job."""
    get_job(session, job_id)
    steps = session.scalars(select(LossPoint).where(LossPoint.job_id == job_id).order_by(LossPoint.step))
    epochs = session.scalars(select(EpochMetric).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch))
    return StoredHistory(steps=list(steps), epochs=list(epochs))


# Plain SQL read through the driver's cursor: typed columns and Row objects would cost more than the query.
STEP_ROWS = text("SELECT step, epoch, examples_seen, loss FROM loss_points WHERE job_id = :job_id ORDER BY step")


def read_history(session: Session, job_id: int, *, max_points: int | None = None) -> tuple[History, int]:
    """The job's history as records, its step series thinned to `max_points` by min/max buckets
    (training.downsample), and how many step points are stored; NotFound if there is no such job.

    Rows come as plain tuples and only the points kept become records, so a 100,000-step history is served
    thinned in a fraction of a second.
    """
    get_job(session, job_id)
    epochs = list(session.scalars(select(EpochMetric).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch)))
    rows = session.connection().execute(STEP_ROWS, {"job_id": job_id}).cursor.fetchall()
    keep = minmax_indices([row[3] for row in rows], max_points or len(rows))
    steps = [StepRecord(*rows[i]) for i in keep]
    return History(steps=steps, epochs=[e.to_record() for e in epochs]), len(rows)


def list_checkpoints(session: Session, job_id: int) -> list[Checkpoint]:
    """The checkpoints kept for a job, by step (their bytes are not loaded)."""
    return list(session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)))


def kept_checkpoints(session: Session, job_id: int) -> tuple[list[Checkpoint], int | None]:
    """The checkpoints kept for a job (see `list_checkpoints`) and the best one's id; NotFound if no such job."""
    job = get_job(session, job_id)
    kept = list_checkpoints(session, job_id)
    return kept, best_checkpoint_id(kept, metric=job.best_metric)


def get_checkpoint(session: Session, job_id: int, *, epoch: int | None = None) -> Checkpoint:
    """A checkpoint with its bytes, chosen by `choose_checkpoint`; NotFound if there is no such job."""
    chosen = choose_checkpoint(session, job_id, epoch)
    query = select(Checkpoint).options(undefer(Checkpoint.data)).where(Checkpoint.id == chosen.id)
    return session.scalars(query).one()


def choose_checkpoint(session: Session, job_id: int, epoch: int | None) -> Checkpoint:
    """The job's best checkpoint (epoch None) or the one that ended `epoch`, without its bytes: see
    `select_checkpoint`; NotFound if there is no such job."""
    job = get_job(session, job_id)
    return select_checkpoint(list_checkpoints(session, job_id), job_id, epoch, metric=job.best_metric)


def select_checkpoint(
    kept: list[Checkpoint], job_id: int, epoch: int | None, *, metric: str = "test_acc"
) -> Checkpoint:
    """The best checkpoint by `metric` (epoch None), or the one that ended `epoch`, from `kept` in step order.

    Conflict if the job has no checkpoint yet, NotFound if none was kept for `epoch`.
    """
    if epoch is None:
        best = best_checkpoint_id(kept, metric=metric)
        if best is None:
            raise Conflict(f"job {job_id} has no checkpoint yet; wait for its first epoch to finish")
        return next(c for c in kept if c.id == best)
    # The lowest step is the end-of-epoch snapshot, not one taken when a run stopped mid-way through the
    # next epoch. (`metrics IS NULL` cannot tell them apart in SQL: the JSON column stores None as 'null'.)
    at_epoch = [c for c in kept if c.epoch == epoch]
    if not at_epoch:
        raise NotFound(f"job {job_id} has no checkpoint for epoch {epoch}")
    return at_epoch[0]


def read_checkpoint_data(factory: sessionmaker[Session], checkpoint_id: int) -> bytes | None:
    """The safetensors bytes of one checkpoint, read in a session of its own; None if it is gone."""
    with factory() as session:
        row = session.get(Checkpoint, checkpoint_id)
        return row.data if row is not None else None


def best_checkpoint_id(checkpoints: list[Checkpoint], *, metric: str = "test_acc") -> int | None:
    """The id of the best checkpoint by `metric` (`Job.best_metric`: the highest test accuracy, or the lowest test
    loss for a job that stops early on it); the latest wins ties, and is the best if none has the metric."""
    if not checkpoints:
        return None
    scored = [(score, c.step, c.id) for c in checkpoints if (score := c.score(metric)) is not None]
    if not scored:
        return max(checkpoints, key=lambda c: c.step).id
    return max(scored)[2]


def ping(session: Session) -> None:
    """Ask the database a trivial query; the driver's error propagates if it cannot answer."""
    session.execute(text("SELECT 1"))


def recent_workers(session: Session, *, within_seconds: float) -> list[Worker]:
    """Workers seen within the last `within_seconds`, most recently seen first."""
    since = utcnow() - timedelta(seconds=within_seconds)
    return list(session.scalars(select(Worker).where(Worker.last_seen >= since).order_by(Worker.last_seen.desc())))


def _for_update(session: Session) -> bool:
    # SQLite has no row locks (the whole database is locked by the write); PostgreSQL locks the row.
    return session.get_bind().dialect.name != "sqlite"
