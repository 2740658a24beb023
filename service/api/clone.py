"""Reproducibility: a job's recorded environment, and clones that queue its spec again."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from service.api.deps import JobIdPath, SessionDep, SettingsDep
from service.api.schemas import ErrorResponse, JobRead
from service.errors import Conflict
from service.storage import jobs
from service.storage.orm import Job
from service.storage.sweeps import latest_event
from service.sweeps.clone import CloneRequest, cloned_spec
from service.training.admission import check_job_limits

router = APIRouter(prefix="/jobs", tags=["jobs"])

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
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[CloneRequest, Body()] = CloneRequest(),  # noqa: B008  (an immutable default: no overrides)
) -> Job:
    """Queue the job's complete spec again, with the overrides applied (on the CPU, an exact rerun)."""
    spec = cloned_spec(session, job_id, body.overrides)
    check_job_limits(spec, settings.jobs, data_dir=settings.data_dir, allow_download=settings.allow_download)
    job = jobs.create_job(session, spec=spec, priority=body.priority)
    session.commit()
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get(
    "/{job_id}/environment",
    summary="Get the environment a job ran in",
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The job has not started yet."}},
)
def get_environment(job_id: JobIdPath, session: SessionDep) -> dict[str, Any]:
    """Versions, device, determinism settings and dataset checksum, as recorded when its last attempt started."""
    jobs.get_job(session, job_id)
    event = latest_event(session, job_id, kind="environment")
    if event is None:
        raise Conflict(f"job {job_id} has not started yet; its environment is recorded when it does")
    return event.payload
