"""Data functions of the model registry: models, versions, aliases and their moves. They add and flush; the
caller owns the session and commits.

`resolve_model_version` is the one reading of "which checkpoint does this name mean now": serving by name
calls it on every request (two indexed reads), and so can anything else that takes a model by name.
"""

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Conflict, InvalidInput, NotFound
from service.storage.db import utcnow
from service.storage.registry_tables import AliasMove, ModelAlias, ModelVersion, RegisteredModel

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# An alias stands in for a version number in URLs (/v2/models/{name}/versions/{alias}), so it starts with a letter.
ALIAS_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
DEFAULT_ALIAS = "prod"


@dataclass(frozen=True)
class ResolvedVersion:
    """What a model name (with an alias or a version number) means now: the version and its checkpoint."""

    model: str
    version: int
    alias: str | None
    job_id: int
    epoch: int
    checkpoint_id: int
    checkpoint_sha256: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]  # [C, S, S]: the normalized tensor the model takes (its ONNX card's input)


def check_name(name: str, *, what: str = "model name", pattern: re.Pattern[str] = NAME_PATTERN) -> str:
    """`name` if it fits `pattern`; InvalidInput naming `what` otherwise."""
    if not pattern.fullmatch(name):
        first = "a letter" if pattern is ALIAS_PATTERN else "a letter or digit"
        raise InvalidInput(f"{what} {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with {first}")
    return name


def create_model(session: Session, *, name: str, description: str = "", created_by: str | None) -> RegisteredModel:
    """A new model named `name`; Conflict if the name is taken."""
    check_name(name)
    if session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name)) is not None:
        raise Conflict(f"a model named {name!r} exists")
    model = RegisteredModel(
        name=name, description=description, created_by=created_by, created_at=utcnow(), last_version=0
    )
    session.add(model)
    session.flush()
    return model


def get_model(session: Session, name: str) -> RegisteredModel:
    """The model named `name`; NotFound if there is none."""
    model = session.scalars(select(RegisteredModel).where(RegisteredModel.name == name)).one_or_none()
    if model is None:
        raise NotFound(f"model {name!r} not found")
    return model


def list_models(session: Session) -> list[RegisteredModel]:
    """Every model, by name."""
    return list(session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)))


def add_version(session: Session, model: RegisteredModel, **fields: Any) -> ModelVersion:
    """The model's next version (1 + the highest ever given, deleted or not), with `fields` (its columns).

    Call it in a write transaction (begin_write): the model row is locked on PostgreSQL, so two registrations
    never take the same number.
    """
    session.refresh(model, with_for_update=True)
    model.last_version += 1
    version = ModelVersion(model_id=model.id, version=model.last_version, created_at=utcnow(), **fields)
    session.add(version)
    session.flush()
    return version


def list_versions(session: Session, model: RegisteredModel) -> list[ModelVersion]:
    """The model's versions, oldest first."""
    query = select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version)
    return list(session.scalars(query))


def get_version(session: Session, model: RegisteredModel, number: int) -> ModelVersion:
    """Version `number` of `model`; NotFound if there is none."""
    query = select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == number)
    found = session.scalars(query).one_or_none()
    if found is None:
        raise NotFound(f"model {model.name!r} has no version {number}")
    return found


def delete_version(session: Session, model: RegisteredModel, number: int) -> None:
    """Delete version `number`; Conflict while an alias points at it (move the alias first)."""
    version = get_version(session, model, number)
    pointing = sorted(session.scalars(select(ModelAlias.name).where(ModelAlias.version_id == version.id)))
    if pointing:
        raise Conflict(f"version {number} of {model.name!r} is served by alias {', '.join(pointing)}; move it first")
    session.delete(version)
    session.flush()


def list_aliases(session: Session, model: RegisteredModel) -> dict[str, int]:
    """The model's aliases and the version number each points at."""
    query = (
        select(ModelAlias.name, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
        .where(ModelAlias.model_id == model.id)
        .order_by(ModelAlias.name)
    )
    return {name: number for name, number in session.execute(query)}


def move_alias(session: Session, model: RegisteredModel, alias: str, number: int, *, moved_by: str | None) -> AliasMove:
    """Point `alias` at version `number` (creating the alias), and record the move. Call it in a write
    transaction: on PostgreSQL the model row is locked (an alias row may not exist yet), so concurrent moves
    are made and recorded one after the other."""
    check_name(alias, what="alias", pattern=ALIAS_PATTERN)
    session.refresh(model, with_for_update=True)
    target = get_version(session, model, number)
    query = select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.name == alias)
    current = session.scalars(query).one_or_none()
    previous = None
    if current is None:
        session.add(ModelAlias(model_id=model.id, name=alias, version_id=target.id, updated_at=utcnow()))
    else:
        previous = session.scalar(select(ModelVersion.version).where(ModelVersion.id == current.version_id))
        current.version_id, current.updated_at = target.id, utcnow()
    move = AliasMove(
        model_id=model.id, alias=alias, from_version=previous, to_version=number, moved_by=moved_by, moved_at=utcnow()
    )
    session.add(move)
    session.flush()
    return move


def alias_history(session: Session, model: RegisteredModel, alias: str) -> list[AliasMove]:
    """Every move of `alias`, oldest first; NotFound if it never existed."""
    query = select(AliasMove).where(AliasMove.model_id == model.id, AliasMove.alias == alias).order_by(AliasMove.id)
    moves = list(session.scalars(query))
    if not moves:
        raise NotFound(f"model {model.name!r} has no alias {alias!r}")
    return moves


def resolve_model_version(
    session: Session, name: str, alias: str | None = None, version: int | None = None
) -> ResolvedVersion:
    """The version `name` means: version `version`, else the one `alias` (default `prod`) points at.

    NotFound for an unknown model, version or alias; Conflict if the version's checkpoint was deleted with its
    job. The returned job id and epoch name the checkpoint (e.g. for fine-tuning from a registered model).
    """
    if alias is not None and version is not None:
        raise InvalidInput("alias, version: give one of the two, not both")
    query = select(ModelVersion, RegisteredModel.name).join(RegisteredModel).where(RegisteredModel.name == name)
    if version is not None:
        query = query.where(ModelVersion.version == version)
    else:
        alias = alias or DEFAULT_ALIAS
        query = query.join(ModelAlias, ModelAlias.version_id == ModelVersion.id).where(ModelAlias.name == alias)
    row = session.execute(query).one_or_none()
    if row is None:
        get_model(session, name)  # NotFound names the model when that is what is missing
        wanted = f"version {version}" if version is not None else f"alias {alias!r}"
        raise NotFound(f"model {name!r} has no {wanted}")
    found: ModelVersion = row[0]
    if found.job_id is None or found.checkpoint_id is None:
        raise Conflict(f"version {found.version} of {name!r}: its job {found.source_job_id} was deleted")
    card_input = found.card.get("input", {})
    side, channels = int(card_input.get("size", 0)), int(card_input.get("channels", 0))
    return ResolvedVersion(
        name, found.version, alias, found.job_id, found.epoch, found.checkpoint_id, found.checkpoint_sha256,
        tuple(found.class_names), (channels, side, side),
    )  # fmt: skip
