"""Compare jobs: histories aligned by step and epoch, and the spec fields that differ."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.api.plumbing.deps import SessionDep
from service.api.plumbing.security import JOBS_READ, auth_responses
from service.api.wire.errors import ErrorResponse
from service.errors import InvalidInput
from service.sweeps.compare import MAX_COMPARED, PARAMETER, Comparison, compare_jobs, parse_job_ids

router = APIRouter(tags=["sweeps"], dependencies=[Depends(JOBS_READ)], responses=auth_responses())


def _job_ids(raw: str) -> list[int]:
    ids = parse_job_ids([raw])
    if not ids:
        raise InvalidInput(f"{PARAMETER}: give 1 to {MAX_COMPARED} job ids, not 0")
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
