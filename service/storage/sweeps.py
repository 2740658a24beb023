"""Data functions for sweeps and their trials. They add and flush; the caller owns the session and commits."""

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.jobspec.spec import JobSpec
from service.jobspec.status import JobStatus, SweepStatus
from service.storage.jobs import Owner, create_job
from service.storage.orm import EpochMetric, Job, JobEvent, Sweep, SweepTrial

ACTIVE = (JobStatus.queued, JobStatus.running)


def add_sweep(session: Session, **values: Any) -> Sweep:
    """Store a new running sweep (no trials yet)."""
    sweep = Sweep(status=SweepStatus.running, trials_asked=0, **values)
    session.add(sweep)
    session.flush()
    return sweep


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    """The sweep with `sweep_id`; NotFound if there is none."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id} not found")
    return sweep


def lock_sweep(session: Session, sweep_id: int) -> Sweep:
    """The sweep, re-read and locked for this transaction (a row lock on PostgreSQL; SQLite's write lock
    must already be held); NotFound if there is none."""
    for_update = session.get_bind().dialect.name != "sqlite"
    sweep = session.get(Sweep, sweep_id, with_for_update=for_update, populate_existing=True)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id} not found")
    return sweep


def list_sweeps(session: Session, *, limit: int = 50, offset: int = 0) -> tuple[list[Sweep], int]:
    """A page of sweeps, newest first, and how many there are."""
    total = session.scalar(select(func.count()).select_from(Sweep)) or 0
    page = session.scalars(select(Sweep).order_by(Sweep.id.desc()).limit(limit).offset(offset))
    return list(page), total


def add_trial(session: Session, sweep: Sweep, *, spec: JobSpec, params: dict[str, Any]) -> SweepTrial:
    """Queue the job of the sweep's next trial and store the trial under the next number."""
    owner = Owner(token_id=sweep.owner_token_id, name=sweep.owner_name, address=sweep.client_address)
    job = create_job(session, spec=spec, priority=sweep.priority, owner=owner)
    trial = SweepTrial(sweep_id=sweep.id, number=sweep.trials_asked, job_id=job.id, params=params, pruner_state={})
    sweep.trials_asked += 1
    session.add(trial)
    session.flush()
    return trial


def trials_with_jobs(session: Session, sweep_id: int) -> list[tuple[SweepTrial, Job]]:
    """The sweep's trials in number order, each with its job."""
    query = (
        select(SweepTrial, Job)
        .join(Job, Job.id == SweepTrial.job_id)
        .where(SweepTrial.sweep_id == sweep_id)
        .order_by(SweepTrial.number)
    )
    return [(trial, job) for trial, job in session.execute(query).all()]


def metric_by_epoch(session: Session, job_ids: list[int], metric: str) -> dict[int, dict[int, float]]:
    """For each job, its epoch -> `metric` (an EpochMetric column) values."""
    column = getattr(EpochMetric, metric)
    rows = session.execute(
        select(EpochMetric.job_id, EpochMetric.epoch, column).where(EpochMetric.job_id.in_(job_ids))
    ).all()
    out: dict[int, dict[int, float]] = {job_id: {} for job_id in job_ids}
    for job_id, epoch, value in rows:
        out[job_id][epoch] = float(value)
    return out


def trial_of_job(session: Session, job_id: int) -> SweepTrial | None:
    """The trial a job runs; None for a job outside any sweep."""
    return session.scalars(select(SweepTrial).where(SweepTrial.job_id == job_id)).first()


def count_active_trials(session: Session, sweep_id: int) -> int:
    """How many of the sweep's trials are queued or running."""
    query = (
        select(func.count())
        .select_from(SweepTrial)
        .join(Job, Job.id == SweepTrial.job_id)
        .where(SweepTrial.sweep_id == sweep_id, Job.status.in_(ACTIVE))
    )
    return session.scalar(query) or 0


def sweeps_wanting_trials(session: Session) -> list[int]:
    """Running sweeps with room for a trial still to ask, or with none active (candidates for advancing)."""
    active = (
        select(SweepTrial.sweep_id, func.count().label("n"))
        .join(Job, Job.id == SweepTrial.job_id)
        .where(Job.status.in_(ACTIVE))
        .group_by(SweepTrial.sweep_id)
        .subquery()
    )
    query = (
        select(Sweep.id)
        .outerjoin(active, active.c.sweep_id == Sweep.id)
        .where(
            Sweep.status == SweepStatus.running,
            func.coalesce(active.c.n, 0) < Sweep.max_concurrent,
            or_(Sweep.trials_asked < Sweep.max_trials, func.coalesce(active.c.n, 0) == 0),
        )
    )
    return list(session.scalars(query))


def latest_event(session: Session, job_id: int, *, kind: str) -> JobEvent | None:
    """The job's most recent event of `kind`; None if it has none."""
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == kind).order_by(JobEvent.id.desc())
    return session.scalars(query.limit(1)).first()
