"""The Open Inference Protocol (V2, REST) over registered models: health, metadata, readiness and inference.

A model's version in a URL is its number or an alias (`/v2/models/fashion/versions/prod`); without one, alias
`prod` serves. Inference shares predict's scope, rate limit, body limit, model cache and dynamic batcher.
Errors are the protocol's `{"error": "..."}` (service/api/plumbing/handlers.py, for every /v2 path).
"""

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Path, Request, Response

from service import __version__
from service.api.plumbing.deps import PredictorDep, SessionDep
from service.api.plumbing.oip import HEADER_LENGTH, INPUT, LOGITS, PROBABILITIES, encode_outputs, parse_request
from service.api.plumbing.predict_inputs import read_body
from service.api.plumbing.security import PREDICT, PREDICT_UNLIMITED
from service.api.routers.serving import VERSION_HEADER
from service.api.wire.oip import InferResponse, MetadataTensor, ModelMetadata, OipError, ServerMetadata
from service.inference.predictor import INLINE_BODY_BYTES
from service.storage import jobs, registry

router = APIRouter(prefix="/v2", tags=["inference protocol"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OipError, "description": text}
    for code, text in (
        (400, "A malformed inference request."),
        (401, "No API token, or an unknown or revoked one."),
        (403, "The token lacks the `predict` scope."),
        (404, "No such model, version or alias."),
        (409, "The version's job (and checkpoint) was deleted."),
        (413, "Body or image count above the limits."),
        (422, "An image that does not decode, or values out of range."),
        (429, "Too many requests; see Retry-After."),
    )
}
ModelName = Annotated[str, Path(max_length=64, description="The registered model's name.")]
VersionName = Annotated[str, Path(max_length=64, description="A version number, or an alias such as `prod`.")]
EXTENSIONS = ["binary_tensor_data", "classification"]


def target(version: str | None) -> tuple[str | None, int | None]:
    """(alias, version number) of a URL's version segment: digits are a number, anything else an alias."""
    if version is None:
        return None, None
    return (None, int(version)) if version.isdigit() and len(version) < 10 else (version, None)


@router.get("", summary="Server metadata", response_model=ServerMetadata, dependencies=[Depends(PREDICT_UNLIMITED)])
@router.get("/", response_model=ServerMetadata, dependencies=[Depends(PREDICT_UNLIMITED)], include_in_schema=False)
def server_metadata() -> ServerMetadata:
    """The server's name, version and protocol extensions; at `/v2/` too, the protocol spec's own path (not a 307)."""
    return ServerMetadata(name="convlab", version=__version__, extensions=EXTENSIONS)


@router.get("/health/live", summary="Server live", response_class=Response)
async def live() -> Response:
    """200 while the server answers."""
    return Response(status_code=200)


@router.get("/health/ready", summary="Server ready", response_class=Response, responses={503: {"model": OipError}})
def ready(session: SessionDep) -> Response:
    """200 when the database answers (models load on their first request)."""
    jobs.ping(session)
    return Response(status_code=200)


def metadata(session: SessionDep, name: str, version: str | None) -> ModelMetadata:
    """The model's inputs and outputs for the version `version` (default alias prod) names."""
    alias, number = target(version)
    resolved = registry.resolve_model_version(session, name, alias, number)
    numbers = [str(v.version) for v in registry.list_versions(session, registry.get_model(session, name))]
    classes = len(resolved.class_names)
    return ModelMetadata(
        name=name,
        versions=numbers,
        platform="convlab_pytorch",
        inputs=[MetadataTensor(name=INPUT, datatype="FP32", shape=[-1, *resolved.input_shape])],
        outputs=[MetadataTensor(name=n, datatype="FP32", shape=[-1, classes]) for n in (LOGITS, PROBABILITIES)],
        parameters={
            "version": resolved.version,
            "alias": resolved.alias,
            "input_forms": "FP32 [-1, C, S, S] normalized; UINT8 [-1, H, W] or [-1, C, H, W] pixels; "
            "BYTES [-1] PNG/JPEG files (base64 strings in JSON)",
            "class_labels": list(resolved.class_names),
        },
    )


@router.get("/models/{name}", summary="Model metadata", responses=ERRORS, dependencies=[Depends(PREDICT_UNLIMITED)])
def model_metadata(name: ModelName, session: SessionDep) -> ModelMetadata:
    """Inputs and outputs (datatype, shape) of the version alias `prod` names."""
    return metadata(session, name, None)


@router.get(
    "/models/{name}/versions/{version}",
    summary="Model version metadata",
    responses=ERRORS,
    dependencies=[Depends(PREDICT_UNLIMITED)],
)
def version_metadata(name: ModelName, version: VersionName, session: SessionDep) -> ModelMetadata:
    """Inputs and outputs (datatype, shape) of a version, by number or alias."""
    return metadata(session, name, version)


def _ready(session: SessionDep, name: str, version: str | None) -> Response:
    registry.resolve_model_version(session, name, *target(version))
    return Response(status_code=200)


@router.get(
    "/models/{name}/ready", response_class=Response, responses=ERRORS, dependencies=[Depends(PREDICT_UNLIMITED)]
)
def model_ready(name: ModelName, session: SessionDep) -> Response:
    """200 when the model's `prod` version can serve."""
    return _ready(session, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_class=Response,
    responses=ERRORS,
    dependencies=[Depends(PREDICT_UNLIMITED)],
)
def version_ready(name: ModelName, version: VersionName, session: SessionDep) -> Response:
    """200 when the version (number or alias) can serve."""
    return _ready(session, name, version)


async def infer(request: Request, predictor: PredictorDep, name: str, version: str | None) -> Response:
    """Run one inference request: parse (off the loop when large), batch, answer in JSON or with binary data."""
    body = await read_body(request)
    header = request.headers.get(HEADER_LENGTH)
    if len(body) > INLINE_BODY_BYTES:
        parsed, batch_of = await to_thread.run_sync(parse_request, body, header, predictor.limits)
    else:
        parsed, batch_of = parse_request(body, header, predictor.limits)
    alias, number = target(version)
    inline = len(body) <= INLINE_BODY_BYTES
    served = await predictor.run_version(name, alias=alias, version=number, batch_of=batch_of, inline=inline)
    encoded = encode_outputs(parsed, served.logits, served.loaded.class_names)
    answer = InferResponse(
        model_name=name, model_version=str(served.version.version), id=parsed.id, outputs=encoded.outputs
    )
    head = answer.model_dump_json(exclude_none=True).encode()
    headers = {VERSION_HEADER: str(served.version.version)}
    if not encoded.binary:
        return Response(head, media_type="application/json", headers=headers)
    headers[HEADER_LENGTH] = str(len(head))
    return Response(head + encoded.binary, media_type="application/octet-stream", headers=headers)


INFER: dict[str, Any] = {
    "response_model": InferResponse,
    "responses": {**ERRORS, 503: {"model": OipError, "description": "Overloaded; see Retry-After."}},
    "dependencies": [Depends(PREDICT)],
    "openapi_extra": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
}


@router.post("/models/{name}/infer", summary="Inference", **INFER)
async def model_infer(request: Request, name: ModelName, predictor: PredictorDep) -> Response:
    """Classify a tensor of images with the model's `prod` version: logits and probabilities."""
    return await infer(request, predictor, name, None)


@router.post("/models/{name}/versions/{version}/infer", summary="Inference by version", **INFER)
async def version_infer(request: Request, name: ModelName, version: VersionName, predictor: PredictorDep) -> Response:
    """Classify a tensor of images with a version (by number or alias): logits and probabilities."""
    return await infer(request, predictor, name, version)
