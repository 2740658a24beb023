"""Sweeps: hyper-parameter searches whose trials are ordinary jobs."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from service.api.plumbing.admission import admit, pin_dataset
from service.api.plumbing.deps import MAX_ID, SessionDep, SessionFactoryDep, SettingsDep
from service.api.plumbing.security import JOBS_READ, WritesJobs, auth_responses
from service.api.routers.jobs import owner_of
from service.api.wire.errors import ErrorResponse
from service.api.wire.sweeps import SweepPage, SweepRead, SweepSummary, TrialRead
from service.errors import Forbidden
from service.jobspec.spec import JobRequest
from service.storage import sweeps as store
from service.storage.db import begin_write
from service.sweeps import advance, plots
from service.sweeps.definition import SweepDefinition, SweepUpdate
from service.sweeps.study import TrialView

router = APIRouter(prefix="/sweeps", tags=["sweeps"], responses=auth_responses())
READS = [Depends(JOBS_READ)]

SweepIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The sweep's id.", examples=[1])]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such sweep."}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "An unknown spec path, a bad range or value, or a limit passed."}
}


def changeable(sweep_id: SweepIdPath, principal: WritesJobs, factory: SessionFactoryDep) -> int:
    """The id of an existing sweep this caller may change: its own, or any for an admin (403 otherwise)."""
    with factory() as session:
        owner = store.get_sweep(session, sweep_id).owner_token_id
    if not principal.may_change(owner):
        raise Forbidden(f"sweep {sweep_id} was started by another token; only its owner or an admin can change it")
    return sweep_id


def _read(session: SessionDep, sweep_id: int) -> SweepRead:
    sweep = store.get_sweep(session, sweep_id)
    trials = advance.load_trials(session, sweep)
    best = advance.best_trial(sweep, trials)
    summary = SweepSummary.model_validate(sweep).model_dump()
    return SweepRead(**summary, trials=[_trial_read(t) for t in trials], best=_trial_read(best) if best else None)


def _trial_read(trial: TrialView) -> TrialRead:
    return TrialRead(
        number=trial.number,
        job_id=trial.job_id,
        params=trial.params,
        status=trial.status,
        state=trial.state.name,
        pruned_epoch=trial.pruned_epoch,
        value=trial.value,
        values=trial.intermediate,
    )


@router.post("", status_code=201, summary="Start a sweep", response_model=SweepRead, responses=INVALID)
def create_sweep(
    body: SweepDefinition, principal: WritesJobs, session: SessionDep, settings: SettingsDep, response: Response
) -> SweepRead:
    """Check every space path against the job spec, store the sweep and queue its first trials (owned by the
    caller's token, like the sweep)."""

    def check(request: JobRequest) -> object:
        return admit(session, settings, request)

    begin_write(session)  # the checks read, then the sweep is written: SQLite cannot upgrade a stale read
    base, _ = pin_dataset(session, body.base)  # every trial trains on the version that is latest now
    body = body.model_copy(update={"base": base})
    sweep = advance.create_sweep(session, body, check=check, owner=owner_of(principal))
    session.commit()
    response.headers["Location"] = f"/sweeps/{sweep.id}"
    return _read(session, sweep.id)


@router.get("", summary="List sweeps, newest first", response_model=SweepPage, dependencies=READS)
def list_sweeps(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> SweepPage:
    """A page of sweeps without their trials."""
    items, total = store.list_sweeps(session, limit=limit, offset=offset)
    return SweepPage(items=[SweepSummary.model_validate(s) for s in items], total=total, limit=limit, offset=offset)


@router.get(
    "/{sweep_id}",
    summary="Get a sweep with its trials",
    response_model=SweepRead,
    responses=NOT_FOUND,
    dependencies=READS,
)
def get_sweep(sweep_id: SweepIdPath, session: SessionDep) -> SweepRead:
    """The sweep, its trials (parameters, status, metric) and the best finished trial."""
    return _read(session, sweep_id)


@router.patch(
    "/{sweep_id}",
    summary="Raise a sweep's max_trials",
    response_model=SweepRead,
    responses={**NOT_FOUND, **INVALID, 409: {"model": ErrorResponse, "description": "The sweep was cancelled."}},
)
def update_sweep(sweep_id: Annotated[int, Depends(changeable)], body: SweepUpdate, session: SessionDep) -> SweepRead:
    """Raise `max_trials`; a finished sweep reopens and runs the new trials only."""
    advance.extend_sweep(session, sweep_id, max_trials=body.max_trials)
    session.commit()
    return _read(session, sweep_id)


@router.post(
    "/{sweep_id}/cancel",
    summary="Cancel a sweep",
    response_model=SweepRead,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The sweep has already ended."}},
)
def cancel_sweep(sweep_id: Annotated[int, Depends(changeable)], session: SessionDep) -> SweepRead:
    """Stop asking for trials; cancel the queued trials and ask the running ones to stop."""
    advance.cancel_sweep(session, sweep_id)
    session.commit()
    return _read(session, sweep_id)


@router.get(
    "/{sweep_id}/plot.png",
    summary="Plot a sweep",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "A PNG figure."}},
    dependencies=READS,
)
def plot_sweep(sweep_id: SweepIdPath, session: SessionDep) -> Response:
    """The metric against each searched parameter, and over trials."""
    sweep = store.get_sweep(session, sweep_id)
    png = plots.render_sweep(sweep, advance.load_trials(session, sweep))
    return Response(content=png, media_type="image/png")
