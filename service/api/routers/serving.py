"""Classify images with a registered model by name, and explain them: the version an alias (default `prod`) or a
number names now."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from service.api.plumbing.deps import MAX_EPOCH, ExplainerDep, PredictorDep
from service.api.plumbing.predict_inputs import read_inputs
from service.api.plumbing.security import PREDICT, auth_responses
from service.api.routers import explain
from service.api.routers.predict import OVERLOADED, REQUEST_BODY, UNSUPPORTED_MEDIA, to_prediction
from service.api.wire.errors import ErrorResponse
from service.api.wire.explain import ModelExplainResponse
from service.api.wire.registry import ModelPredictResponse
from service.inference import Predictor

router = APIRouter(
    prefix="/models", tags=["models"], dependencies=[Depends(PREDICT)], responses=auth_responses(limited=True)
)
VERSION_HEADER = "X-Model-Version"
ModelName = Annotated[str, Path(max_length=64, description="The model's name.")]
AliasQuery = Annotated[str | None, Query(max_length=64, description="Use this alias's version (default prod).")]
VersionQuery = Annotated[int | None, Query(ge=1, le=MAX_EPOCH, description="Use this version.")]
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "The JSON body is malformed."},
    404: {"model": ErrorResponse, "description": "No such model, alias or version."},
    409: {"model": ErrorResponse, "description": "The version's job (and checkpoint) was deleted."},
    413: {"model": ErrorResponse, "description": "Body, image count or pixel count above the limits."},
    415: {"model": ErrorResponse, "description": UNSUPPORTED_MEDIA},
}


@router.post(
    "/{name}/predict",
    summary="Classify images with a model by name",
    response_model=ModelPredictResponse,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        200: {"headers": {VERSION_HEADER: {"description": "The version that served.", "schema": {"type": "integer"}}}},
        **ERRORS,
        422: {"model": ErrorResponse, "description": "Not an image; or both `alias` and `version`."},
        503: {"model": ErrorResponse, "description": OVERLOADED},
    },
)
async def predict_by_name(
    request: Request,
    name: ModelName,
    predictor: PredictorDep,
    alias: AliasQuery = None,
    version: VersionQuery = None,
    top_k: Annotated[int, Query(ge=1, le=1000, description="How many ranked classes to return per image.")] = 3,
) -> Response:
    """The same inputs as `POST /jobs/{id}/predict`; the answer names the version that served it."""
    return await answer(request, predictor, name, alias, version, top_k)


async def answer(
    request: Request, predictor: Predictor, name: str, alias: str | None, version: int | None, top_k: int
) -> Response:
    """The answer to a predict-by-name request whose caller is admitted (this route, and the serving lane's copy
    of it: service/api/plumbing/lane.py)."""
    raw = await read_inputs(request)
    resolved, result = await predictor.predict_version(name, raw, alias=alias, version=version, top_k=top_k)
    body = ModelPredictResponse(  # built once from its parts: a job's answer dumped and validated again costs more
        job_id=result.job_id,
        checkpoint_epoch=result.checkpoint_epoch,
        checkpoint_sha256=result.checkpoint_sha256,
        predictions=[to_prediction(p) for p in result.items],
        model=name,
        version=resolved.version,
        alias=resolved.alias,
    )
    headers = {VERSION_HEADER: str(resolved.version)}
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)


@router.post(
    "/{name}/explain",
    summary="Explain a model's predictions by name, with heatmaps",
    response_model=ModelExplainResponse,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        200: {
            "content": {"image/png": {}},
            "description": "JSON heatmaps, or with format=png the overlays.",
            "headers": {VERSION_HEADER: {"description": "The version that served.", "schema": {"type": "integer"}}},
        },
        **ERRORS,
        422: {"model": ErrorResponse, "description": "Bad image, method or target; both alias and version; budget."},
    },
)
async def explain_by_name(
    request: Request,
    name: ModelName,
    explainer: ExplainerDep,
    query: explain.ExplainQueryDep,
    alias: AliasQuery = None,
    version: VersionQuery = None,
) -> Response:
    """As `POST /jobs/{id}/explain`, with the version an alias (default prod) or number names; it is named in the
    `X-Model-Version` header, and in the body of a JSON answer."""
    raw = await read_inputs(request)
    found, result = await explainer.explain_version(name, raw, alias=alias, version=version, options=query.options)
    headers = {VERSION_HEADER: str(found.version)}
    if query.png:
        response = explain.overlay_response(result)
        response.headers.update(headers)
        return response
    wire = explain.to_response(result).model_dump()
    body = ModelExplainResponse(**wire, model=name, version=found.version, alias=found.alias)
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)
