"""Classify images with a trained job's model (best checkpoint by default)."""

from dataclasses import dataclass
from typing import Annotated, Any

import torch
from anyio import to_thread
from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from service import jobs
from service.api.predict_inputs import RawInputs, decode_all, parse_json_inputs, read_inputs
from service.config import Settings
from service.deps import MAX_EPOCH, JobIdPath, ModelCacheDep, SessionFactoryDep, SettingsDep
from service.errors import Conflict, NotFound
from service.inference import ImageLimits, ModelCache, prepare_batch, to_predictions
from service.orm import Checkpoint
from service.schemas import ONE_PIXEL_PNG, ClassScore, ErrorResponse, PredictionRead, PredictRequest, PredictResponse
from service.training.checkpoints import LoadedCheckpoint
from service.training.runtime import resolve_device

router = APIRouter(prefix="/jobs", tags=["predict"])


def choose_checkpoint(kept: list[Checkpoint], job_id: int, epoch: int | None) -> Checkpoint:
    """The best checkpoint, or the one that ended `epoch`; Conflict if none exists, NotFound for the epoch."""
    if epoch is None:
        best = jobs.best_checkpoint_id(kept)
        if best is None:
            raise Conflict(f"job {job_id} has no checkpoint yet; wait for its first epoch to finish")
        return next(c for c in kept if c.id == best)
    at_epoch = sorted((c for c in kept if c.epoch == epoch), key=lambda c: (c.metrics is None, c.step))
    if not at_epoch:
        raise NotFound(f"checkpoint: job {job_id} kept no checkpoint for epoch {epoch}")
    return at_epoch[0]


def limits_of(settings: Settings) -> ImageLimits:
    """The configured bounds on one predict request."""
    return ImageLimits(max_images=settings.predict_max_images, max_pixels=settings.predict_max_pixels)


@dataclass(frozen=True)
class Choice:
    """Which checkpoint a request uses: its model-cache key (job id, checkpoint id, sha256) and epoch."""

    key: tuple[int, int, str]
    epoch: int


def choose(factory: sessionmaker[Session], cache: ModelCache, job_id: int, epoch: int | None) -> Choice:
    """The checkpoint for (job, epoch), looked up in the database at most once per second per pair."""
    remembered = cache.recall((job_id, epoch))
    if isinstance(remembered, Choice):
        return remembered
    with factory() as session:
        jobs.get_job(session, job_id)
        chosen = choose_checkpoint(jobs.list_checkpoints(session, job_id), job_id, epoch)
        choice = Choice((job_id, chosen.id, chosen.sha256), chosen.epoch)
    cache.remember((job_id, epoch), choice)
    return choice


def read_checkpoint_bytes(factory: sessionmaker[Session], choice: Choice) -> bytes:
    """The safetensors bytes of the chosen checkpoint; Conflict if it was pruned meanwhile."""
    with factory() as session:
        row = session.get(Checkpoint, choice.key[1])
        if row is None:
            raise Conflict(f"checkpoint of epoch {choice.epoch} was just replaced; retry the request")
        return row.data


def load_and_prepare(
    factory: sessionmaker[Session],
    cache: ModelCache,
    settings: Settings,
    job_id: int,
    epoch: int | None,
    raw: RawInputs | bytes,
) -> tuple[Choice, LoadedCheckpoint, torch.Tensor]:
    """Everything before the forward pass, in one trip to a worker thread: checkpoint, model, input batch."""
    choice = choose(factory, cache, job_id, epoch)
    loaded = cache.get(choice.key, lambda: read_checkpoint_bytes(factory, choice), resolve_device(settings.device))
    limits = limits_of(settings)
    parsed = parse_json_inputs(raw, limits) if isinstance(raw, bytes) else raw
    images = decode_all(parsed, in_channels=loaded.in_channels, limits=limits)
    return choice, loaded, prepare_batch(loaded, images)


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
    },
}


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
        415: {"model": ErrorResponse, "description": "Neither multipart/form-data nor JSON."},
        422: {"model": ErrorResponse, "description": "Not an image, corrupt, empty, or ragged pixel arrays."},
    },
)
async def predict(
    request: Request,
    job_id: JobIdPath,
    factory: SessionFactoryDep,
    cache: ModelCacheDep,
    settings: SettingsDep,
    top_k: Annotated[int, Query(ge=1, le=1000, description="How many ranked classes to return per image.")] = 3,
    checkpoint: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH, description="Use the checkpoint of this epoch.")
    ] = None,
) -> PredictResponse:
    """Upload `file` parts, or send JSON `images` (base64) or `pixels`; answers one prediction per image, in order."""
    raw = await read_inputs(request, limits_of(settings))
    choice, loaded, batch = await to_thread.run_sync(
        load_and_prepare, factory, cache, settings, job_id, checkpoint, raw, limiter=request.app.state.predict_limiter
    )
    probs = await request.app.state.batchers.get(choice.key).submit(loaded.model, batch)
    return PredictResponse(
        job_id=job_id,
        checkpoint_epoch=choice.epoch,
        checkpoint_sha256=choice.key[2],
        predictions=[
            PredictionRead(
                class_index=p.class_index,
                label=p.label,
                probability=p.probability,
                top_k=[ClassScore(class_index=i, label=label, probability=q) for i, label, q in p.top_k],
            )
            for p in to_predictions(probs, loaded.class_names, top_k)
        ],
    )
