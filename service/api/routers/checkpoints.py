"""The checkpoints a job kept: list them and download one as a safetensors file."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from service.api.plumbing.deps import MAX_EPOCH, JobIdPath, SessionDep
from service.api.plumbing.security import JOBS_READ, auth_responses
from service.api.wire.errors import ErrorResponse
from service.api.wire.history import CheckpointRead
from service.storage import jobs

router = APIRouter(prefix="/jobs", tags=["checkpoints"], dependencies=[Depends(JOBS_READ)], responses=auth_responses())

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such job, or no checkpoint kept for that epoch."}
}


@router.get(
    "/{job_id}/checkpoints",
    summary="List a job's checkpoints",
    response_model=list[CheckpointRead],
    responses=NOT_FOUND,
)
def list_checkpoints(job_id: JobIdPath, session: SessionDep) -> list[CheckpointRead]:
    """Epoch, step, sha256, size and metrics of each checkpoint kept, oldest first; `best` marks the default."""
    kept, best = jobs.kept_checkpoints(session, job_id)
    return [CheckpointRead.model_validate(c).model_copy(update={"best": c.id == best}) for c in kept]


@router.get(
    "/{job_id}/checkpoints/{epoch}",
    summary="Download a checkpoint (safetensors)",
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {"content": {"application/octet-stream": {}}, "description": "The safetensors file."},
    },
)
def download_checkpoint(
    job_id: JobIdPath,
    epoch: Annotated[int, Path(ge=0, le=MAX_EPOCH, description="Completed epochs when it was taken.", examples=[2])],
    session: SessionDep,
) -> Response:
    """The safetensors file (weights, optimizer state, JSON metadata in its header; no pickle)."""
    checkpoint = jobs.get_checkpoint(session, job_id, epoch=epoch)
    filename = f"convlab-job{job_id}-epoch{epoch}.safetensors"
    return Response(
        checkpoint.data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": f'"{checkpoint.sha256}"',
            "X-Checkpoint-Sha256": checkpoint.sha256,
        },
    )
