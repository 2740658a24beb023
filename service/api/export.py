"""A job's checkpoint as a verified ONNX file, and the model card that travels with it."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from service.api.deps import MAX_EPOCH, JobIdPath, PredictorDep
from service.api.schemas import ErrorResponse
from service.api.security import JOBS_READ, auth_responses
from service.inference.exporter import Exported

router = APIRouter(prefix="/jobs", tags=["export"], dependencies=[Depends(JOBS_READ)], responses=auth_responses())


class ExportFormat(StrEnum):
    onnx = "onnx"


class Normalization(BaseModel):
    scale: float = Field(description="Pixels (0..255) are first multiplied by this (1/255).")
    mean: list[float] = Field(description="Per channel, subtracted after scaling.")
    std: list[float] = Field(description="Per channel, divided by after subtracting the mean.")


class CardInput(BaseModel):
    name: str = Field(examples=["images"])
    shape: list[str | int] = Field(description="`batch` is dynamic.", examples=[["batch", 1, 28, 28]])
    dtype: str
    layout: str
    size: int = Field(description="Side in pixels the model sees.")
    channels: int
    native_size: int = Field(description="Side of the dataset's own images.")
    normalization: Normalization
    transform: str


class CardOutput(BaseModel):
    name: str = Field(examples=["logits"])
    shape: list[str | int]
    dtype: str


class Verification(BaseModel):
    max_abs_diff: float = Field(description="Largest |logit difference| between onnxruntime and PyTorch.")
    tolerance: float = Field(description="Exports above this are refused.")
    inputs: str = Field(description="What the export was checked on.")


class ModelCard(BaseModel):
    """What the file is, what it expects and returns, and how it was checked (also in the file's metadata)."""

    format: str = Field(examples=["convlab-model-card/1"])
    job_id: int
    epoch: int
    step: int
    architecture: str
    dataset: str
    spec: dict[str, Any] = Field(description="The job's full training spec.")
    metrics: dict[str, Any] | None = Field(description="The checkpoint's epoch metrics; null mid-epoch.")
    input: CardInput
    output: CardOutput
    class_labels: list[str]
    weights_sha256: str = Field(description="sha256 of the weights as one safetensors file without metadata.")
    checkpoint_sha256: str = Field(description="sha256 of the checkpoint file it was exported from.")
    verification: Verification
    exporter: str
    runtime: str


class ExportRead(BaseModel):
    """A stored export: the file's facts and its model card."""

    format: ExportFormat
    sha256: str = Field(description="sha256 of the ONNX file.")
    size: int = Field(description="Bytes of the ONNX file.")
    max_abs_diff: float
    seconds: float = Field(description="How long exporting and verifying took.")
    created_at: datetime
    cached: bool = Field(description="Whether this export was stored before this request.")
    card: ModelCard


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
