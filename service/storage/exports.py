"""Data functions for exports: a checkpoint's verified ONNX file, stored once per (checkpoint, format)."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from service.storage.orm import ModelExport


def find_export(session: Session, checkpoint_id: int, fmt: str) -> ModelExport | None:
    """The stored export of a checkpoint in `fmt`, with its bytes, or None."""
    query = (
        select(ModelExport)
        .options(undefer(ModelExport.data))
        .where(ModelExport.checkpoint_id == checkpoint_id, ModelExport.format == fmt)
    )
    return session.scalars(query).one_or_none()


def add_export(session: Session, export: ModelExport) -> None:
    """Add `export`; IntegrityError at the flush when that checkpoint already has one or is gone."""
    session.add(export)
    session.flush()


def count_exports(session: Session, checkpoint_id: int) -> int:
    """How many exports a checkpoint has stored (one per format)."""
    query = select(func.count()).select_from(ModelExport).where(ModelExport.checkpoint_id == checkpoint_id)
    return int(session.scalar(query) or 0)
