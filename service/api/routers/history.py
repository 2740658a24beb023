"""A job's training history: JSON series and loss/accuracy plots."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from service.api.plumbing.deps import JobDep, JobIdPath, SessionDep
from service.api.plumbing.security import JOBS_READ, auth_responses
from service.api.wire.errors import ErrorResponse
from service.api.wire.history import HistoryRead
from service.storage import jobs
from service.training.downsample import MIN_POINTS
from service.training.plots import render_history

router = APIRouter(prefix="/jobs", tags=["history"], dependencies=[Depends(JOBS_READ)], responses=auth_responses())

PLOT_POINTS = 2000  # a figure cannot show more step points than this usefully
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such job."}}
MaxPoints = Annotated[
    int | None,
    Query(
        ge=MIN_POINTS,
        le=100_000,
        description="Thin the step series to at most this many points: the first, the last, the global minimum and "
        "maximum, and the lowest and highest loss of each of equal buckets between.",
    ),
]


@router.get("/{job_id}/history", summary="Training history of a job", response_model=HistoryRead, responses=NOT_FOUND)
def get_history(job_id: JobIdPath, session: SessionDep, max_points: MaxPoints = None) -> HistoryRead:
    """Loss per logged step and metrics per finished epoch; `max_points` thins long step series."""
    history, recorded = jobs.read_history(session, job_id, max_points=max_points)
    return HistoryRead(job_id=job_id, steps=history.steps, epochs=history.epochs, total_steps_recorded=recorded)


def _plot(job: JobDep, session: SessionDep, fmt: str) -> bytes:
    history, _ = jobs.read_history(session, job.id, max_points=PLOT_POINTS)
    title = f"job {job.id}: {job.spec.get('architecture')} on {job.spec.get('dataset')}"
    return render_history(history.steps, history.epochs, title=title, fmt=fmt)


@router.get(
    "/{job_id}/history.png",
    summary="Loss and accuracy curves (PNG)",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "A PNG image."}},
)
def get_history_png(job: JobDep, session: SessionDep) -> Response:
    """The training loss per step and per epoch, and train/test accuracy per epoch, drawn as a PNG."""
    return Response(_plot(job, session, "png"), media_type="image/png")


@router.get(
    "/{job_id}/history.svg",
    summary="Loss and accuracy curves (SVG)",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/svg+xml": {}}, "description": "An SVG image."}},
)
def get_history_svg(job: JobDep, session: SessionDep) -> Response:
    """The same curves as the PNG, as a scalable SVG."""
    return Response(_plot(job, session, "svg"), media_type="image/svg+xml")
