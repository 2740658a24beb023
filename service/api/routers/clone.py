"""Reproducibility: a job's recorded environment, and clones that queue its spec again."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response

from service.api.plumbing.admission import admit
from service.api.plumbing.deps import JobIdPath, SessionDep, SettingsDep
from service.api.plumbing.security import JOBS_READ, WritesJobs, auth_responses
from service.api.routers.jobs import QUOTA_RETRY_SECONDS, owner_of
from service.api.wire.errors import ErrorResponse
from service.api.wire.jobs import JobRead
from service.errors import Conflict, TooManyRequests
from service.storage import jobs
from service.storage.orm import Job
from service.storage.sweeps import latest_event
from service.sweeps.clone import CloneRequest, cloned_spec

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=auth_responses())

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such job."}}


@router.post(
    "/{job_id}/clone",
    status_code=201,
    summary="Queue a copy of a job",
    response_model=JobRead,
    responses={**NOT_FOUND, 422: {"model": ErrorResponse, "description": "An unknown path or a bad value."}},
)
def clone_job(
    job_id: JobIdPath,
    principal: WritesJobs,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[CloneRequest, Body()] = CloneRequest(),  # noqa: B008  (an immutable default: no overrides)
) -> Job:
    """Queue the job's complete spec again, with the overrides applied (on the CPU, an exact rerun); the copy
    belongs to the caller's token and counts toward its active jobs."""
    owner = owner_of(principal)
    limit = settings.access.max_active_jobs
    if jobs.begin_submission(session, owner) >= limit:
        raise TooManyRequests(
            f"this caller already has {limit} queued or running jobs (max_active_jobs); wait for one to finish",
            retry_after=QUOTA_RETRY_SECONDS,
        )
    request = cloned_spec(session, job_id, body.overrides)
    spec = admit(session, settings, request)
    job = jobs.create_job(session, spec=spec, priority=body.priority, owner=owner)
    session.commit()
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get(
    "/{job_id}/environment",
    summary="Get the environment a job ran in",
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The job has not started yet."}},
    dependencies=[Depends(JOBS_READ)],
)
def get_environment(job_id: JobIdPath, session: SessionDep) -> dict[str, Any]:
    """Versions, device, determinism settings and dataset checksum, as recorded when its last attempt started."""
    jobs.get_job(session, job_id)
    event = latest_event(session, job_id, kind="environment")
    if event is None:
        raise Conflict(f"job {job_id} has not started yet; its environment is recorded when it does")
    return event.payload
