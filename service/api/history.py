"""A job's training history: JSON series and loss/accuracy plots."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from service import jobs
from service.deps import JobIdPath, SessionDep
from service.orm import EpochMetric
from service.plots import EpochPoint, StepPoint, downsample_steps, render_history
from service.schemas import EpochRead, ErrorResponse, HistoryRead, StepRead

router = APIRouter(prefix="/jobs", tags=["history"])

PLOT_POINTS = 2000  # a figure cannot show more step points than this usefully
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such job."}}
MaxPoints = Annotated[
    int | None,
    Query(ge=2, le=100_000, description="Downsample the step series to at most this many points (bucket means)."),
]


def _series(session: SessionDep, job_id: int) -> tuple[list[StepPoint], list[EpochMetric]]:
    jobs.get_job(session, job_id)
    history = jobs.get_history(session, job_id)
    return [StepPoint(p.step, p.epoch, p.examples_seen, p.loss) for p in history.steps], history.epochs


@router.get("/{job_id}/history", summary="Training history of a job", response_model=HistoryRead, responses=NOT_FOUND)
def get_history(job_id: JobIdPath, session: SessionDep, max_points: MaxPoints = None) -> HistoryRead:
    """Loss per logged step and metrics per finished epoch; `max_points` thins long step series."""
    steps, epochs = _series(session, job_id)
    return HistoryRead(
        job_id=job_id,
        steps=[StepRead.model_validate(p, from_attributes=True) for p in downsample_steps(steps, max_points)],
        epochs=[EpochRead.model_validate(e) for e in epochs],
        total_steps_recorded=len(steps),
    )


def _plot(session: SessionDep, job_id: int, fmt: str) -> bytes:
    steps, epochs = _series(session, job_id)
    points = [EpochPoint(e.epoch, e.train_loss, e.train_acc, e.test_loss, e.test_acc) for e in epochs]
    spec = jobs.get_job(session, job_id).spec
    title = f"job {job_id}: {spec.get('architecture')} on {spec.get('dataset')}"
    return render_history(downsample_steps(steps, PLOT_POINTS), points, title=title, fmt=fmt)


@router.get(
    "/{job_id}/history.png",
    summary="Loss and accuracy curves (PNG)",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "A PNG image."}},
)
def get_history_png(job_id: JobIdPath, session: SessionDep) -> Response:
    """The training loss per step and per epoch, and train/test accuracy per epoch, drawn as a PNG."""
    return Response(_plot(session, job_id, "png"), media_type="image/png")


@router.get(
    "/{job_id}/history.svg",
    summary="Loss and accuracy curves (SVG)",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/svg+xml": {}}, "description": "An SVG image."}},
)
def get_history_svg(job_id: JobIdPath, session: SessionDep) -> Response:
    """The same curves as the PNG, as a scalable SVG."""
    return Response(_plot(session, job_id, "svg"), media_type="image/svg+xml")
