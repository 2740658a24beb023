"""Classify images with a trained job's model (best checkpoint by default)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from service.api.plumbing.deps import MAX_EPOCH, JobIdPath, PredictorDep
from service.api.plumbing.predict_inputs import read_inputs
from service.api.plumbing.security import PREDICT, auth_responses
from service.api.wire.errors import ErrorResponse
from service.api.wire.predict import ClassScore, PredictionRead, PredictResponse
from service.inference import ONE_PIXEL_PNG, Prediction, Predictions, Predictor, PredictRequest

router = APIRouter(
    prefix="/jobs", tags=["predict"], dependencies=[Depends(PREDICT)], responses=auth_responses(limited=True)
)

REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                "required": ["file"],
            },
        },
        "application/json": {
            "schema": PredictRequest.model_json_schema(),
            "examples": {
                "base64": {"summary": "Base64 PNG images", "value": {"images": [ONE_PIXEL_PNG]}},
                "pixels": {"summary": "A 28x28 pixel array", "value": {"pixels": [[[0] * 28] * 28]}},
            },
        },
        # One image as the whole body, as TorchServe takes it: the plainest form for programs.
        **{media: {"schema": {"type": "string", "format": "binary"}} for media in ("image/png", "image/jpeg")},
    },
}
UNSUPPORTED_MEDIA = "Not multipart/form-data, JSON, image/png or image/jpeg."
OVERLOADED = "More predict requests in flight than can be served within predict_max_wait_ms; see Retry-After."


@router.post(
    "/{job_id}/predict",
    summary="Classify images with a trained job",
    response_model=PredictResponse,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        400: {"model": ErrorResponse, "description": "The JSON body is malformed."},
        404: {"model": ErrorResponse, "description": "No such job, or no checkpoint for the requested epoch."},
        409: {"model": ErrorResponse, "description": "The job has no checkpoint yet."},
        413: {"model": ErrorResponse, "description": "Body, image count or pixel count above the limits."},
        415: {"model": ErrorResponse, "description": UNSUPPORTED_MEDIA},
        422: {"model": ErrorResponse, "description": "Not an image, corrupt, empty, or ragged pixel arrays."},
        503: {"model": ErrorResponse, "description": OVERLOADED},
    },
)
async def predict(
    request: Request,
    job_id: JobIdPath,
    predictor: PredictorDep,
    top_k: Annotated[int, Query(ge=1, le=1000, description="How many ranked classes to return per image.")] = 3,
    checkpoint: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH, description="Use the checkpoint of this epoch.")
    ] = None,
) -> Response:
    """Upload `file` parts, send JSON `images` (base64) or `pixels`, or one PNG or JPEG image as the body
    (`Content-Type: image/png` or `image/jpeg`); answers one prediction per image, in order."""
    return await answer(request, predictor, job_id, checkpoint, top_k)


async def answer(request: Request, predictor: Predictor, job_id: int, checkpoint: int | None, top_k: int) -> Response:
    """The answer to a predict request whose caller is admitted (this route, and the serving lane's copy of it:
    service/api/plumbing/lane.py)."""
    raw = await read_inputs(request)
    result = await predictor.predict(job_id, raw, epoch=checkpoint, top_k=top_k)
    # Serialized here, once, by pydantic: FastAPI would validate the model it was just built from again.
    return Response(to_response(result).model_dump_json(), media_type="application/json")


def to_response(result: Predictions) -> PredictResponse:
    """The wire form of `result`."""
    return PredictResponse(
        job_id=result.job_id,
        checkpoint_epoch=result.checkpoint_epoch,
        checkpoint_sha256=result.checkpoint_sha256,
        predictions=[to_prediction(p) for p in result.items],
    )


def to_prediction(p: Prediction) -> PredictionRead:
    """The wire form of one image's prediction."""
    return PredictionRead(
        class_index=p.class_index,
        label=p.label,
        probability=p.probability,
        top_k=[ClassScore(class_index=i, label=label, probability=q) for i, label, q in p.top_k],
    )
