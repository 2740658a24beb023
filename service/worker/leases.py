"""The queue: atomic claims, leases, and the fenced writes a worker makes for the attempt it holds.

Every function here that writes for a worker first runs `_fence`, an UPDATE of the job row matching
(job id, attempt, running). On PostgreSQL that UPDATE locks the row, on SQLite the transaction already
holds the write lock (BEGIN IMMEDIATE), so a claim by another worker cannot interleave: once a job has been
claimed again, the old attempt's writes raise `LeaseLost` and change nothing.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from service.errors import LeaseLost
from service.jobspec.status import JobStatus
from service.storage.db import begin_write, utcnow
from service.storage.fleet import Capabilities, runnable_by
from service.storage.jobs import add_status_event
from service.storage.orm import Job, Worker


@dataclass(frozen=True)
class Lease:
    """What a worker holds after a claim: the job and the attempt that fences its writes."""

    job_id: int
    attempt: int
    owner: str


def _claimable_query(now: datetime, capabilities: Capabilities | None) -> Select[Job]:
    """The most urgent job a worker may claim now: queued, or running on an expired lease; row-locked."""
    claimable = or_(
        Job.status == JobStatus.queued,
        and_(Job.status == JobStatus.running, Job.lease_expires_at < now),
    )
    if capabilities is not None:
        claimable = and_(claimable, runnable_by(capabilities))
    query = select(Job).where(claimable).order_by(Job.priority.desc(), Job.created_at, Job.id)
    return query.limit(1).with_for_update(skip_locked=True)


def claim_next_job(
    session: Session,
    *,
    worker_id: str,
    lease_seconds: float,
    max_lost_leases: int,
    capabilities: Capabilities | None = None,
) -> tuple[Job, Lease] | None:
    """Claim the most urgent queued job, or one whose lease expired; None if there is none.

    Highest priority first, then oldest; with `capabilities`, only a job such a worker can run (storage.fleet).
    A job whose worker was lost `max_lost_leases` times ends failed. Starts its own write transaction; the caller
    commits.
    """
    begin_write(session)
    while True:
        now = lease_clock(session)
        job = session.scalars(_claimable_query(now, capabilities)).first()
        if job is None:
            return None
        reason = "claimed"
        if job.status is JobStatus.running:
            if _settle_lost_job(session, job, max_lost_leases=max_lost_leases):
                continue
            reason = f"resumed: the lease of attempt {job.attempt} (worker {job.lease_owner}) expired"
        job.status = JobStatus.running
        job.attempt += 1
        job.lease_owner = worker_id
        job.lease_expires_at = now + timedelta(seconds=lease_seconds)
        job.heartbeat_at = now
        job.started_at = job.started_at or now
        add_status_event(session, job, reason=reason, worker=worker_id)
        session.flush()
        return job, Lease(job_id=job.id, attempt=job.attempt, owner=worker_id)


def lease_clock(session: Session) -> datetime:
    """The time leases are measured by: PostgreSQL's clock (one for every host), else this host's."""
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = session.execute(select(func.clock_timestamp())).scalar_one()
        return now.astimezone(UTC)
    return utcnow()


def _settle_lost_job(session: Session, job: Job, *, max_lost_leases: int) -> bool:
    """Count a lost worker; end the job (True) if it was cancelled or has lost too many workers."""
    job.lost_leases += 1
    if job.cancel_requested:
        _end(session, job, JobStatus.cancelled, reason="cancelled; its worker was lost before it stopped")
        return True
    if job.lost_leases >= max_lost_leases:
        message = f"the job lost its worker {job.lost_leases} times (lease expired without a heartbeat)"
        _end(session, job, JobStatus.failed, reason=message, error=message)
        return True
    return False


def _end(session: Session, job: Job, status: JobStatus, *, reason: str, error: str | None = None) -> None:
    job.status = status
    job.finished_at = utcnow()
    job.lease_owner = None
    job.lease_expires_at = None
    job.error = error
    add_status_event(session, job, reason=reason)
    session.flush()


def _fence(session: Session, lease: Lease, **values: Any) -> None:
    """Update the job row only if `lease` still holds it; LeaseLost otherwise."""
    statement = (
        update(Job)
        .where(Job.id == lease.job_id, Job.attempt == lease.attempt, Job.status == JobStatus.running)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} no longer holds the lease")


def begin_fenced(session: Session, lease: Lease, **values: Any) -> None:
    """Open a write transaction for `lease`, applying `values` to the job row; LeaseLost if it is gone."""
    begin_write(session)
    _fence(session, lease, **values)


def renew_lease(session: Session, lease: Lease, *, lease_seconds: float) -> bool:
    """Extend the lease by `lease_seconds` from now; return whether a cancel was requested."""
    begin_write(session)
    now = lease_clock(session)
    _fence(session, lease, heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == lease.job_id)))


def finish_job(
    session: Session,
    lease: Lease,
    *,
    status: JobStatus,
    reason: str,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> Job:
    """End the held job with a final `status` (and error or result); LeaseLost if no longer held."""
    if not status.finished:
        raise ValueError(f"{status} is not a final status")
    begin_fenced(session, lease, result=result, eta_seconds=0.0 if status is JobStatus.succeeded else None)
    job = session.get_one(Job, lease.job_id, populate_existing=True)
    _end(session, job, status, reason=reason, error=error)
    return job


def requeue_job(session: Session, lease: Lease, *, reason: str) -> Job:
    """Return the held job to the queue without counting a lost worker; LeaseLost if no longer held."""
    begin_fenced(session, lease, status=JobStatus.queued, lease_owner=None, lease_expires_at=None)
    job = session.get_one(Job, lease.job_id, populate_existing=True)
    add_status_event(session, job, reason=reason)
    session.flush()
    return job


def register_worker(
    session: Session,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    capabilities: Capabilities | None = None,
    retention_seconds: float = 86_400.0,
) -> Worker:
    """Record a starting worker process and what it can run (for /health and the waiting reasons), and forget
    workers unseen for `retention_seconds`."""
    now = utcnow()
    session.execute(delete(Worker).where(Worker.last_seen < now - timedelta(seconds=retention_seconds)))
    worker = Worker(id=worker_id, hostname=hostname, pid=pid, started_at=now, last_seen=now)
    if capabilities is not None:
        worker.device_kind, worker.device_name = capabilities.kind, capabilities.name
        worker.device_memory, worker.device_count = capabilities.memory, capabilities.count
    session.add(worker)
    session.flush()
    return worker


def touch_worker(session: Session, worker_id: str, *, current_job_id: int | None) -> None:
    """Mark a worker as alive now, running `current_job_id` (None when idle)."""
    statement = (
        update(Worker)
        .where(Worker.id == worker_id)
        .values(last_seen=utcnow(), current_job_id=current_job_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(statement)
