"""The model registry's tables: named models, their immutable versions, aliases and every move of an alias.

A version points at the job checkpoint it was registered from and at that checkpoint's verified ONNX export
(both SET NULL if the job is deleted: the version's row, hashes and metrics stay, serving it answers 409).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.db import Base, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


class RegisteredModel(Base):
    """A stable name whose versions are registered checkpoints and whose aliases say which version serves."""

    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))  # the token's name (None with auth off)
    last_version: Mapped[int] = mapped_column(Integer, default=0)  # the highest ever given; numbers are not reused


class ModelVersion(Base):
    """One immutable version of a model: a job's checkpoint (by epoch and sha256) and its ONNX export."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per model; never reused
    job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("jobs.id", ondelete="SET NULL"))
    checkpoint_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("checkpoints.id", ondelete="SET NULL"))
    export_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("model_exports.id", ondelete="SET NULL"))
    source_job_id: Mapped[int] = mapped_column(BigInteger)  # kept when the job is deleted
    epoch: Mapped[int] = mapped_column(Integer)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    onnx_sha256: Mapped[str] = mapped_column(String(64))
    architecture: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(32))
    class_names: Mapped[list[str]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the epoch's EpochRecord
    card: Mapped[dict[str, Any]] = mapped_column(JSON)  # the ONNX export's model card: input shape, transform
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))


class ModelAlias(Base):
    """Where an alias of a model points now (its moves are in AliasMove)."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("registered_models.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("model_versions.id"))  # deleting it: 409 first
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AliasMove(Base):
    """One move of an alias: who (token name), when, from which version number to which."""

    __tablename__ = "alias_moves"
    __table_args__ = (Index("ix_alias_moves_model_id_alias_id", "model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigId, ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)  # None: the alias was created by this move
    to_version: Mapped[int] = mapped_column(Integer)
    moved_by: Mapped[str | None] = mapped_column(String(64))
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
