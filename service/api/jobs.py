"""Training jobs: queue, list, inspect, cancel, delete."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response

from service.api.deps import MAX_ID, JobDep, JobIdPath, SessionDep, SettingsDep
from service.api.schemas import JOB_EXAMPLE, ErrorResponse, JobCreate, JobPage, JobRead
from service.storage import fleet, jobs
from service.storage.orm import Job, JobStatus
from service.training.admission import check_job_limits

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such job."}}


def admitted(
    body: Annotated[JobCreate, Body(openapi_examples={"bn_lenet": {"summary": "BN-LeNet", "value": JOB_EXAMPLE}})],
    settings: SettingsDep,
) -> JobCreate:
    """The body, once its spec is within this server's limits and can run here (422 naming the field if not)."""
    check_job_limits(body.to_spec(), settings.jobs, data_dir=settings.data_dir, allow_download=settings.allow_download)
    return body


@router.post(
    "",
    status_code=201,
    summary="Queue a training job",
    response_model=JobRead,
    responses={
        400: {"model": ErrorResponse, "description": "The body is not valid JSON."},
        422: {
            "model": ErrorResponse,
            "description": "Unknown architecture, dataset, optimizer or field; a value out of range or above a "
            "configured limit; or a dataset whose files are not available.",
        },
    },
)
def create_job(body: Annotated[JobCreate, Depends(admitted)], session: SessionDep, response: Response) -> Job:
    """Validate the spec, fill in the book's recipe for what is left out, and queue the job."""
    job = jobs.create_job(session, spec=body.to_spec(), priority=body.priority)
    session.commit()
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get("", summary="List jobs, newest first", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> JobPage:
    """A page of jobs, optionally with one status, newest first, and the total matching."""
    items, total = jobs.list_jobs(session, status=status, limit=limit, offset=offset)
    workers = fleet.live_workers(session, lease_seconds=settings.queue.lease_seconds)
    return JobPage(items=[JobRead.of(j, workers) for j in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", summary="Get a job", response_model=JobRead, responses=NOT_FOUND)
def get_job(job: JobDep, session: SessionDep, settings: SettingsDep) -> JobRead:
    """Status, spec, progress and outcome of one job; a queued job that no live worker can run says why."""
    return JobRead.of(job, fleet.live_workers(session, lease_seconds=settings.queue.lease_seconds))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    response_model=JobRead,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The job has already finished."}},
)
def cancel_job(job_id: JobIdPath, session: SessionDep) -> Job:
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
def delete_job(job_id: JobIdPath, session: SessionDep) -> Response:
    """Delete a finished job with its events, history and checkpoints."""
    jobs.remove_job(session, job_id)
    session.commit()
    return Response(status_code=204)
