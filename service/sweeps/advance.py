"""Creating, advancing, extending and cancelling sweeps: each a function of one transaction.

A sweep advances when its trials report, with no daemon of its own: whoever advances it (the API at creation
or extension, a worker whose trial ended, an idle worker healing after a crash) locks the sweep row first
(PostgreSQL row lock; SQLite's write lock), reads its trials and asks for new ones up to `max_concurrent`.
The trial counter and the unique (sweep, number) pair are written in that same transaction, so a trial is
asked for exactly once however many processes race or die.
"""

import math
from collections.abc import Callable

from sqlalchemy.orm import Session

from service.errors import Conflict, InvalidInput
from service.jobspec.paths import with_values
from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus, SweepStatus
from service.storage import sweeps as store
from service.storage.db import begin_write, utcnow
from service.storage.jobs import Owner, request_cancel
from service.storage.orm import Sweep, SweepTrial
from service.sweeps.definition import SweepDefinition
from service.sweeps.space import Space
from service.sweeps.study import TrialView, ask_params

DEFAULT_MAX_TRIALS = 20
MAX_GRID_POINTS = 10_000


def load_trials(session: Session, sweep: Sweep) -> list[TrialView]:
    """The sweep's trials with their job status and metric per epoch, in number order."""
    rows = store.trials_with_jobs(session, sweep.id)
    metrics = store.metric_by_epoch(session, [job.id for _, job in rows], sweep.metric)
    return [
        TrialView(
            number=trial.number,
            job_id=job.id,
            params=trial.params,
            status=job.status,
            pruned_epoch=trial.pruned_epoch,
            intermediate=metrics[job.id],
            pruner_state=trial.pruner_state or {},
        )
        for trial, job in rows
    ]


def best_trial(sweep: Sweep, trials: list[TrialView]) -> TrialView | None:
    """The finished (not pruned) trial with the best final metric; None if none has finished."""
    done = [t for t in trials if t.status is JobStatus.succeeded and t.pruned_epoch is None]
    scored = [t for t in done if t.value is not None and math.isfinite(t.value)]
    if not scored:
        return None
    sign = 1.0 if sweep.goal == "max" else -1.0
    return max(scored, key=lambda t: (sign * (t.value or 0.0), -t.number))


def _max_trials(definition: SweepDefinition, space: Space) -> int:
    if definition.sampler != "grid":
        return definition.max_trials or DEFAULT_MAX_TRIALS
    size = grid_size(space)
    if definition.max_trials is not None and definition.max_trials > size:
        raise InvalidInput(f"max_trials: {definition.max_trials} is more than the grid's {size} points")
    return definition.max_trials or size


def grid_size(space: Space) -> int:
    """How many points the grid has; InvalidInput above MAX_GRID_POINTS."""
    size = math.prod(len(space.grid_points(path)) for path in space.dimensions)
    if size > MAX_GRID_POINTS:
        raise InvalidInput(f"space: the grid has {size} points, more than {MAX_GRID_POINTS}")
    return size


def create_sweep(
    session: Session, definition: SweepDefinition, *, check: Callable[[JobRequest], object], owner: Owner | None = None
) -> Sweep:
    """Validate the space against the job spec (`check` applies the server's limits), store the sweep and
    queue its first trials. InvalidInput naming the path on any problem."""
    base = definition.base.model_dump(mode="json")
    try:
        check(definition.base)
    except InvalidInput as exc:
        raise InvalidInput(f"base.{exc.detail}") from None
    space = Space.parse(definition.space)
    space.check_values(base, check)
    sweep = store.add_sweep(
        session,
        name=definition.name,
        base=base,
        space=definition.space,
        sampler=definition.sampler,
        pruner=definition.pruner.model_dump(),
        metric=definition.metric.name,
        goal=definition.metric.goal,
        max_trials=_max_trials(definition, space),
        max_concurrent=definition.max_concurrent,
        max_failed=definition.max_failed,
        seed=definition.seed,
        priority=definition.priority,
        created_at=utcnow(),
        owner_token_id=owner.token_id if owner else None,
        owner_name=owner.name if owner else None,
        client_address=owner.address if owner else None,
    )
    _advance_locked(session, sweep)
    return sweep


def advance_sweep(session: Session, sweep_id: int) -> list[SweepTrial]:
    """Lock the sweep, then ask for trials up to `max_concurrent` or end it; the new trials.

    Starts its own write transaction; the caller commits.
    """
    begin_write(session)
    return _advance_locked(session, store.lock_sweep(session, sweep_id))


def _advance_locked(session: Session, sweep: Sweep) -> list[SweepTrial]:
    if sweep.status is not SweepStatus.running:
        return []
    trials = load_trials(session, sweep)
    if sum(t.status is JobStatus.failed for t in trials) >= sweep.max_failed:
        _end(sweep, SweepStatus.failed)
        _cancel_trials(session, sweep.id)
        return []
    active = sum(not t.status.finished for t in trials)
    room = min(sweep.max_concurrent - active, sweep.max_trials - sweep.trials_asked)
    space = Space.parse(sweep.space)
    added: list[SweepTrial] = []
    for _ in range(max(room, 0)):
        params = ask_params(sweep, space, trials, sweep.trials_asked)
        spec = JobRequest.model_validate(with_values(sweep.base, params)).resolve()  # this trial's admission
        trial = store.add_trial(session, sweep, spec=spec, params=params)
        trials.append(TrialView(trial.number, trial.job_id, params, JobStatus.queued, None, {}))
        added.append(trial)
    if active == 0 and not added:
        _end(sweep, SweepStatus.succeeded)
    return added


def _end(sweep: Sweep, status: SweepStatus) -> None:
    sweep.status = status
    sweep.finished_at = utcnow()


def extend_sweep(session: Session, sweep_id: int, *, max_trials: int) -> Sweep:
    """Raise `max_trials` of a running or finished sweep and queue the new trials (a finished one reopens)."""
    begin_write(session)
    sweep = store.lock_sweep(session, sweep_id)
    if sweep.status is SweepStatus.cancelled:
        raise Conflict(f"sweep {sweep_id} was cancelled; start a new sweep instead")
    if max_trials < sweep.max_trials:
        raise InvalidInput(f"max_trials: {max_trials} is below the current {sweep.max_trials}; it can only be raised")
    if sweep.sampler == "grid" and max_trials > (size := grid_size(Space.parse(sweep.space))):
        raise InvalidInput(f"max_trials: {max_trials} is more than the grid's {size} points")
    if max_trials > sweep.max_trials:
        sweep.max_trials = max_trials
        sweep.status, sweep.finished_at = SweepStatus.running, None
        _advance_locked(session, sweep)
    session.flush()
    return sweep


def cancel_sweep(session: Session, sweep_id: int) -> Sweep:
    """Stop asking for trials and cancel the queued and running ones; Conflict if the sweep has ended."""
    begin_write(session)
    sweep = store.lock_sweep(session, sweep_id)
    if sweep.status is not SweepStatus.running:
        raise Conflict(f"sweep {sweep_id} has already ended ({sweep.status.value})")
    _end(sweep, SweepStatus.cancelled)
    _cancel_trials(session, sweep_id)
    return sweep


def _cancel_trials(session: Session, sweep_id: int) -> None:
    for _, job in store.trials_with_jobs(session, sweep_id):
        if not job.status.finished:
            request_cancel(session, job)  # the sweep's lock, then the job's: the order every path takes
    session.flush()
