"""Compare jobs: histories aligned by step and epoch, and the spec fields that differ."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.api.deps import MAX_ID, SessionDep
from service.api.schemas import ErrorResponse
from service.api.security import JOBS_READ, auth_responses
from service.errors import InvalidInput
from service.sweeps.compare import Comparison, compare_jobs

router = APIRouter(tags=["sweeps"], dependencies=[Depends(JOBS_READ)], responses=auth_responses())
MAX_COMPARED = 16


def _job_ids(raw: str) -> list[int]:
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"jobs (query parameter): {raw!r} is not a comma-separated list of job ids") from None
    if not 1 <= len(ids) <= MAX_COMPARED:
        raise InvalidInput(f"jobs (query parameter): give 1 to {MAX_COMPARED} job ids, not {len(ids)}")
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise InvalidInput("jobs (query parameter): job ids are positive 64-bit integers")
    if len(set(ids)) != len(ids):
        raise InvalidInput("jobs (query parameter): a job id repeats")
    return ids


@router.get(
    "/compare",
    summary="Compare jobs",
    response_model=Comparison,
    responses={404: {"model": ErrorResponse, "description": "One of the jobs does not exist."}},
)
def compare(
    session: SessionDep,
    jobs: Annotated[str, Query(description="Comma-separated job ids.", examples=["1,2,3"], max_length=400)],
) -> Comparison:
    """The jobs' histories aligned by step and epoch, and the spec fields that differ between them."""
    return compare_jobs(session, _job_ids(jobs))
