"""A job's checkpoint as a verified ONNX file, and the model card that travels with it."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from service.api.plumbing.deps import MAX_EPOCH, JobIdPath, PredictorDep
from service.api.plumbing.security import JOBS_READ, auth_responses
from service.api.wire.errors import ErrorResponse
from service.api.wire.export import ExportFormat, ExportRead, ModelCard
from service.inference.exporter import Exported

router = APIRouter(prefix="/jobs", tags=["export"], dependencies=[Depends(JOBS_READ)], responses=auth_responses())


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such job, or no checkpoint kept for that epoch."},
    409: {"model": ErrorResponse, "description": "The job has no checkpoint yet."},
    422: {
        "model": ErrorResponse,
        "description": "A bad parameter; a corrupt checkpoint or one that does not fit its architecture; or an "
        "export refused because onnxruntime's logits differ from PyTorch's by more than 1e-4 "
        "(`X-Export-Max-Abs-Diff` gives by how much).",
    },
}
FormatQuery = Annotated[ExportFormat, Query(alias="format", description="The file format (only `onnx`).")]
EpochQuery = Annotated[
    int | None, Query(ge=0, le=MAX_EPOCH, description="The checkpoint of this epoch; default the best.", examples=[2])
]


def _card_link(job_id: int, epoch: int) -> str:
    return f'</jobs/{job_id}/export/card?format=onnx&epoch={epoch}>; rel="describedby"'


@router.get(
    "/{job_id}/export",
    summary="Export a checkpoint (ONNX)",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "The ONNX file."}},
)
def export_model(
    job_id: JobIdPath, predictor: PredictorDep, fmt: FormatQuery = ExportFormat.onnx, epoch: EpochQuery = None
) -> Response:
    """The checkpoint as an ONNX file (dynamic batch axis, eval mode), verified against PyTorch when made.

    Made on the first request and stored; the model card is in its metadata (`convlab.model_card`).
    """
    exported = predictor.exporter.export(job_id, epoch)
    row, chosen = exported.row, int(exported.row.card["epoch"])
    return Response(
        row.data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="convlab-job{job_id}-epoch{chosen}.{fmt.value}"',
            "ETag": f'"{row.sha256}"',
            "X-Export-Max-Abs-Diff": repr(row.max_abs_diff),
            "X-Export-Cache": "hit" if exported.cached else "miss",
            "X-Checkpoint-Sha256": row.checkpoint_sha256,
            "Link": _card_link(job_id, chosen),
        },
    )


@router.get(
    "/{job_id}/export/card",
    summary="An export's model card",
    response_model=ExportRead,
    responses=ERRORS,
)
def export_card(
    job_id: JobIdPath, predictor: PredictorDep, fmt: FormatQuery = ExportFormat.onnx, epoch: EpochQuery = None
) -> ExportRead:
    """The model card and facts of the export (made now if it was not yet, exactly as the download would)."""
    return describe(predictor.exporter.export(job_id, epoch))


def describe(exported: Exported) -> ExportRead:
    """The wire form of a stored export."""
    row = exported.row
    return ExportRead(
        format=ExportFormat(row.format),
        sha256=row.sha256,
        size=row.size,
        max_abs_diff=row.max_abs_diff,
        seconds=row.seconds,
        created_at=row.created_at,
        cached=exported.cached,
        card=ModelCard.model_validate(row.card),
    )
