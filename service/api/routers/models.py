"""The model registry: named models, their immutable versions, and aliases whose every move is kept."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from service.api.plumbing.deps import MAX_EPOCH, PredictorDep, SessionDep, SessionFactoryDep
from service.api.plumbing.security import MODELS_READ, ReadsModels, WritesModels, auth_responses
from service.api.wire.errors import ErrorResponse
from service.api.wire.registry import (
    AliasMoveRead,
    AliasMoveRequest,
    ModelCreate,
    ModelRead,
    VersionCreate,
    VersionRead,
)
from service.inference.registration import register_version
from service.storage import registry
from service.storage.db import begin_write
from service.storage.orm import AliasMove, ModelVersion, RegisteredModel

router = APIRouter(prefix="/models", tags=["models"], responses=auth_responses())

ModelName = Annotated[str, Path(max_length=64, description="The model's name.", examples=["fashion"])]
AliasName = Annotated[str, Path(max_length=64, description="The alias, e.g. `prod`.", examples=["prod"])]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_EPOCH, description="The version number.", examples=[1])]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such model."}}


def version_read(model: RegisteredModel, version: ModelVersion, aliases: dict[str, int]) -> VersionRead:
    """The wire form of `version`, with the aliases (of `aliases`) pointing at it."""
    return VersionRead(
        model=model.name,
        version=version.version,
        job_id=version.source_job_id,
        job_exists=version.job_id is not None,
        epoch=version.epoch,
        checkpoint_sha256=version.checkpoint_sha256,
        onnx_sha256=version.onnx_sha256,
        architecture=version.architecture,
        dataset=version.dataset,
        class_names=version.class_names,
        metrics=version.metrics,
        aliases=sorted(name for name, number in aliases.items() if number == version.version),
        created_at=version.created_at,
        created_by=version.created_by,
    )


def model_read(session: SessionDep, model: RegisteredModel) -> ModelRead:
    """The wire form of `model`: its version count, latest version and aliases."""
    versions = registry.list_versions(session, model)
    return ModelRead(
        name=model.name,
        description=model.description,
        created_at=model.created_at,
        created_by=model.created_by,
        versions=len(versions),
        latest_version=versions[-1].version if versions else None,
        aliases=registry.list_aliases(session, model),
    )


def move_read(move: AliasMove) -> AliasMoveRead:
    return AliasMoveRead(
        alias=move.alias,
        from_version=move.from_version,
        to_version=move.to_version,
        moved_by=move.moved_by,
        moved_at=move.moved_at,
    )


@router.post(
    "",
    status_code=201,
    summary="Create a model",
    responses={409: {"model": ErrorResponse, "description": "The name is taken."}},
)
def create_model(body: ModelCreate, session: SessionDep, principal: WritesModels) -> ModelRead:
    """A new, empty model: register versions into it, then point an alias (`prod`) at one."""
    begin_write(session)
    model = registry.create_model(
        session, name=body.name, description=body.description, created_by=principal.token_name
    )
    session.commit()
    return model_read(session, model)


@router.get("", summary="List models", dependencies=[Depends(MODELS_READ)])
def list_models(session: SessionDep) -> list[ModelRead]:
    """Every model, by name, with its aliases."""
    return [model_read(session, model) for model in registry.list_models(session)]


@router.get("/{name}", summary="Show a model", responses=NOT_FOUND, dependencies=[Depends(MODELS_READ)])
def get_model(name: ModelName, session: SessionDep) -> ModelRead:
    """One model, its version count and its aliases."""
    return model_read(session, registry.get_model(session, name))


@router.post(
    "/{name}/versions",
    status_code=201,
    summary="Register a version",
    responses={
        404: {"model": ErrorResponse, "description": "No such model, job, or checkpoint for that epoch."},
        409: {"model": ErrorResponse, "description": "The job has not succeeded."},
        422: {"model": ErrorResponse, "description": "A bad body, or an ONNX export refused by its verification."},
    },
)
def create_version(
    name: ModelName, body: VersionCreate, factory: SessionFactoryDep, predictor: PredictorDep, principal: WritesModels
) -> VersionRead:
    """A succeeded job's checkpoint (the best, or the end of `epoch`) as the model's next, immutable version.

    Its ONNX export is made (and verified) now, if the checkpoint has none yet, so it may take seconds.
    """
    version = register_version(
        factory, predictor.exporter, name=name, job_id=body.job_id, epoch=body.epoch, by=principal.token_name
    )
    with factory() as session:
        model = registry.get_model(session, name)
        return version_read(model, version, registry.list_aliases(session, model))


@router.get("/{name}/versions", summary="List versions", responses=NOT_FOUND, dependencies=[Depends(MODELS_READ)])
def list_versions(name: ModelName, session: SessionDep) -> list[VersionRead]:
    """The model's versions, oldest first."""
    model = registry.get_model(session, name)
    aliases = registry.list_aliases(session, model)
    return [version_read(model, v, aliases) for v in registry.list_versions(session, model)]


@router.get(
    "/{name}/versions/{version}", summary="Show a version", responses=NOT_FOUND, dependencies=[Depends(MODELS_READ)]
)
def get_version(name: ModelName, version: VersionNumber, session: SessionDep) -> VersionRead:
    """One version: its checkpoint, dataset, classes, metrics and export."""
    model = registry.get_model(session, name)
    return version_read(model, registry.get_version(session, model, version), registry.list_aliases(session, model))


@router.delete(
    "/{name}/versions/{version}",
    status_code=204,
    summary="Delete a version",
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "An alias points at the version."}},
)
def delete_version(name: ModelName, version: VersionNumber, session: SessionDep, _: WritesModels) -> Response:
    """Delete a version no alias points at (its number is never reused)."""
    begin_write(session)
    registry.delete_version(session, registry.get_model(session, name), version)
    session.commit()
    return Response(status_code=204)


@router.put(
    "/{name}/aliases/{alias}",
    summary="Move an alias",
    responses={404: {"model": ErrorResponse, "description": "No such model or version."}},
)
def move_alias(
    name: ModelName, alias: AliasName, body: AliasMoveRequest, session: SessionDep, principal: WritesModels
) -> AliasMoveRead:
    """Point `alias` at a version (created on first use); the next request by alias in every API process
    is served by that version. The move is kept in the alias's history; a rollback is a move back."""
    begin_write(session)
    model = registry.get_model(session, name)
    move = registry.move_alias(session, model, alias, body.version, moved_by=principal.token_name)
    session.commit()
    return move_read(move)


@router.get(
    "/{name}/aliases/{alias}/history",
    summary="An alias's history",
    responses={404: {"model": ErrorResponse, "description": "No such model or alias."}},
)
def alias_history(name: ModelName, alias: AliasName, session: SessionDep, _: ReadsModels) -> list[AliasMoveRead]:
    """Every move of the alias, oldest first: who made it, when, from which version to which."""
    return [move_read(m) for m in registry.alias_history(session, registry.get_model(session, name), alias)]
