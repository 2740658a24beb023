"""Explain a trained job's predictions: what the network looked at, as heatmaps or a PNG overlay."""

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from service.api.plumbing.deps import MAX_EPOCH, ExplainerDep, JobIdPath
from service.api.plumbing.predict_inputs import read_inputs
from service.api.plumbing.security import PREDICT, auth_responses
from service.api.routers.predict import REQUEST_BODY, UNSUPPORTED_MEDIA, to_prediction
from service.api.wire.errors import ErrorResponse
from service.api.wire.explain import ExplainMethod, ExplainResponse, ExplanationRead
from service.api.wire.predict import ClassScore
from service.inference.explainer import ExplainOptions, Explanations
from service.inference.overlay import overlay_png

router = APIRouter(
    prefix="/jobs", tags=["predict"], dependencies=[Depends(PREDICT)], responses=auth_responses(limited=True)
)

# A string, so a bad value's 422 names `target` (a union of int and literal would name its branches instead).
TARGET_PATTERN = r"^(predicted|[0-9]{1,9})$"


@dataclass(frozen=True)
class ExplainQuery:
    """What to explain and how to answer, from the query (for JSON and multipart bodies alike)."""

    options: ExplainOptions
    png: bool


def explain_query(
    method: Annotated[ExplainMethod, Query(description="gradcam, integrated_gradients or saliency.")] = "gradcam",
    target: Annotated[
        str, Query(pattern=TARGET_PATTERN, description="The class index to explain, or `predicted`.")
    ] = "predicted",
    steps: Annotated[int, Query(ge=1, le=256, description="Integrated gradients: steps of the path.")] = 32,
    format: Annotated[Literal["json", "png"], Query(description="JSON heatmaps, or one PNG of overlays.")] = "json",
    top_k: Annotated[int, Query(ge=1, le=1000, description="How many ranked classes to return per image.")] = 3,
) -> ExplainQuery:
    """The explain routes' shared query parameters."""
    options = ExplainOptions(method, None if target == "predicted" else int(target), steps, top_k)
    return ExplainQuery(options, format == "png")


ExplainQueryDep = Annotated[ExplainQuery, Depends(explain_query)]


def overlay_response(result: Explanations) -> Response:
    """The overlays of `result` as one PNG."""
    return Response(
        overlay_png([e.image for e in result.items], [e.heatmap for e in result.items]), media_type="image/png"
    )


@router.post(
    "/{job_id}/explain",
    summary="Explain a trained job's predictions with heatmaps",
    response_model=ExplainResponse,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        200: {"content": {"image/png": {}}, "description": "JSON heatmaps, or with format=png the overlays."},
        400: {"model": ErrorResponse, "description": "The JSON body is malformed."},
        404: {"model": ErrorResponse, "description": "No such job, or no checkpoint for the requested epoch."},
        409: {"model": ErrorResponse, "description": "The job has no checkpoint yet."},
        413: {"model": ErrorResponse, "description": "Body, image count or pixel count above the limits."},
        415: {"model": ErrorResponse, "description": UNSUPPORTED_MEDIA},
        422: {"model": ErrorResponse, "description": "Bad image, method or target, or the time budget was spent."},
    },
)
async def explain(
    request: Request,
    job_id: JobIdPath,
    explainer: ExplainerDep,
    query: ExplainQueryDep,
    checkpoint: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH, description="Use the checkpoint of this epoch.")
    ] = None,
) -> Response:
    """Send images as to predict; method, target and format are query parameters (for JSON and multipart alike)."""
    raw = await read_inputs(request)
    result = await explainer.explain_job(job_id, raw, epoch=checkpoint, options=query.options)
    if query.png:
        return overlay_response(result)
    return Response(to_response(result).model_dump_json(), media_type="application/json")


def to_response(result: Explanations) -> ExplainResponse:
    """The wire form of `result`, heatmaps rounded to 3 decimals (a 96x96 map stays near 50 kB of JSON)."""
    return ExplainResponse(
        job_id=result.job_id,
        checkpoint_epoch=result.checkpoint_epoch,
        checkpoint_sha256=result.checkpoint_sha256,
        method=result.method,
        explanations=[
            ExplanationRead(
                prediction=to_prediction(e.prediction),
                target=ClassScore(class_index=e.target[0], label=e.target[1], probability=e.target[2]),
                heatmap=e.heatmap.mul(1000).round().div(1000).tolist(),
            )
            for e in result.items
        ],
    )
