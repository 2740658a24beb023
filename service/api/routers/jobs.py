"""Training jobs: queue, list, inspect, cancel, delete."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response

from service.access import Principal
from service.api.plumbing.deps import MAX_ID, JobDep, JobIdPath, SessionDep, SessionFactoryDep, SettingsDep
from service.api.plumbing.security import JOBS_READ, WritesJobs, auth_responses
from service.api.wire.errors import ErrorResponse
from service.api.wire.jobs import JOB_EXAMPLE, JobCreate, JobPage, JobRead
from service.errors import Forbidden, TooManyRequests
from service.jobspec.spec import JobSpec
from service.jobspec.status import JobStatus
from service.storage import fleet, jobs
from service.storage.orm import Job, Worker
from service.training.admission import admit_job

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=auth_responses())
# A job's owner waits for one of its jobs to finish; trying again sooner than this is unlikely to help.
QUOTA_RETRY_SECONDS = 30

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such job."}}


@dataclass(frozen=True)
class Admitted:
    """A submission let in: its resolved spec and queue priority."""

    spec: JobSpec
    priority: int


def admitted(
    body: Annotated[JobCreate, Body(openapi_examples={"bn_lenet": {"summary": "BN-LeNet", "value": JOB_EXAMPLE}})],
    settings: SettingsDep,
    principal: WritesJobs,
    session: SessionDep,
) -> Admitted:
    """The body's spec resolved, once it is within this server's limits and can run here (422 naming the field if
    not), from a caller below its quota of active jobs (429 if not)."""
    spec = admit_job(
        body.to_request(),
        settings.jobs,
        data_dir=settings.data_dir,
        allow_download=settings.allow_download,
        keep_checkpoints=settings.queue.keep_checkpoints,
    )
    limit = settings.access.max_active_jobs
    if jobs.begin_submission(session, owner_of(principal)) >= limit:
        raise TooManyRequests(
            f"this caller already has {limit} queued or running jobs (max_active_jobs); wait for one to finish",
            retry_after=QUOTA_RETRY_SECONDS,
        )
    return Admitted(spec, body.priority)


def job_read(job: Job, workers: list[Worker]) -> JobRead:
    """The job as sent, with its waiting reason among the live `workers`."""
    return JobRead.model_validate(job).model_copy(update={"waiting_reason": fleet.waiting_reason(job, workers)})


def owner_of(principal: Principal) -> jobs.Owner:
    """Who a job (or sweep) submitted by `principal` belongs to."""
    return jobs.Owner(token_id=principal.token_id, name=principal.token_name, address=principal.address)


def changeable(job_id: JobIdPath, principal: WritesJobs, factory: SessionFactoryDep) -> int:
    """The id of an existing job this caller may cancel or delete: its own, or any for an admin (403 otherwise)."""
    with factory() as session:
        job = jobs.get_job(session, job_id)
        owner = job.owner_token_id
    if not principal.may_change(owner):
        raise Forbidden(f"job {job_id} was submitted by another token; only its owner or an admin can change it")
    return job_id


@router.post(
    "",
    status_code=201,
    summary="Queue a training job",
    response_model=JobRead,
    responses={
        400: {"model": ErrorResponse, "description": "The body is not valid JSON."},
        429: {"model": ErrorResponse, "description": "The caller has max_active_jobs queued or running jobs."},
        422: {
            "model": ErrorResponse,
            "description": "Unknown architecture, dataset, optimizer or field; a value out of range or above a "
            "configured limit; or a dataset whose files are not available.",
        },
    },
)
def create_job(
    body: Annotated[Admitted, Depends(admitted)], principal: WritesJobs, session: SessionDep, response: Response
) -> Job:
    """Validate the spec, fill in the book's recipe for what is left out, and queue the job (owned by the token)."""
    job = jobs.create_job(session, spec=body.spec, priority=body.priority, owner=owner_of(principal))
    session.commit()
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get("", summary="List jobs, newest first", response_model=JobPage, dependencies=[Depends(JOBS_READ)])
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status.")] = None,
    sweep: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only the trials of this sweep.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> JobPage:
    """A page of jobs, optionally with one status, newest first, and the total matching."""
    items, total = jobs.list_jobs(session, status=status, sweep=sweep, limit=limit, offset=offset)
    workers = fleet.live_workers(session, lease_seconds=settings.queue.lease_seconds)
    return JobPage(items=[job_read(j, workers) for j in items], total=total, limit=limit, offset=offset)


@router.get(
    "/{job_id}", summary="Get a job", response_model=JobRead, responses=NOT_FOUND, dependencies=[Depends(JOBS_READ)]
)
def get_job(job: JobDep, session: SessionDep, settings: SettingsDep) -> JobRead:
    """Status, spec, progress and outcome of one job; a queued job that no live worker can run says why."""
    return job_read(job, fleet.live_workers(session, lease_seconds=settings.queue.lease_seconds))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    response_model=JobRead,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The job has already finished."}},
)
def cancel_job(job_id: Annotated[int, Depends(changeable)], session: SessionDep) -> Job:
    """Cancel a queued job at once, or ask a running one to stop at its next batch (it keeps a checkpoint)."""
    job = jobs.cancel_job(session, job_id)
    session.commit()
    return job


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Delete a finished job",
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The job is queued or running."}},
)
def delete_job(job_id: Annotated[int, Depends(changeable)], session: SessionDep) -> Response:
    """Delete a finished job with its events, history and checkpoints."""
    jobs.remove_job(session, job_id)
    session.commit()
    return Response(status_code=204)
