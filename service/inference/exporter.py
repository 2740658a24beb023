"""Exports as a service: each checkpoint is exported once (per format), stored in the database, served after.

Concurrent requests for one checkpoint share one export (SingleFlight); several API processes may race to
store it, and the table's unique (checkpoint, format) constraint keeps the first.
"""

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import CheckpointError, Conflict
from service.inference.cache import SingleFlight
from service.inference.export import export_onnx
from service.storage import exports, jobs
from service.storage.db import begin_write
from service.storage.orm import Checkpoint, ModelExport
from service.training.checkpoints import LoadedCheckpoint, load_checkpoint

log = logging.getLogger("convlab.inference")
ONNX = "onnx"


@dataclass(frozen=True)
class Exported:
    """A stored (or just made) export and whether it came from the store."""

    row: ModelExport
    cached: bool


def checked_bytes(data: bytes | None, checkpoint: Checkpoint) -> bytes:
    """The checkpoint's bytes if they still hash to its recorded sha256; CheckpointError (422) otherwise."""
    if data is None:
        raise Conflict(f"checkpoint of epoch {checkpoint.epoch} was just deleted or replaced; retry the request")
    if hashlib.sha256(data).hexdigest() != checkpoint.sha256:
        raise CheckpointError(
            f"checkpoint of epoch {checkpoint.epoch} is corrupt: its bytes do not match their recorded sha256"
        )
    return data


class Exporter:
    """Makes, stores and finds verified ONNX exports of checkpoints."""

    def __init__(self, session_factory: sessionmaker[Session], *, data_dir: Path | None) -> None:
        self.session_factory = session_factory
        self.data_dir = data_dir
        self._flights: SingleFlight[Exported] = SingleFlight()
        # One export at a time per process: each takes seconds of every core, and a burst of them must not
        # starve predictions. Waiting requests hold a thread each, as any blocking handler does.
        self._slot = threading.Semaphore(1)

    def export(self, job_id: int, epoch: int | None) -> Exported:
        """The ONNX export of the job's checkpoint for `epoch` (None: the best), made on first request."""
        with self.session_factory() as session:
            checkpoint = jobs.choose_checkpoint(session, job_id, epoch)
            stored = exports.find_export(session, checkpoint.id, ONNX)
        if stored is not None:
            return Exported(stored, cached=True)
        return self._flights.do(checkpoint.id, lambda: self._make(job_id, checkpoint, None))

    def stored_onnx(self, checkpoint_id: int) -> bytes | None:
        """The checkpoint's stored ONNX bytes, or None if it was never exported."""
        with self.session_factory() as session:
            stored = exports.find_export(session, checkpoint_id, ONNX)
        return None if stored is None else stored.data

    def onnx_for(self, job_id: int, checkpoint_id: int, loaded: LoadedCheckpoint) -> bytes:
        """The ONNX bytes for a checkpoint already loaded for serving: stored, or made from it."""
        stored = self.stored_onnx(checkpoint_id)
        if stored is not None:
            return stored
        with self.session_factory() as session:
            checkpoint = session.get(Checkpoint, checkpoint_id)
        if checkpoint is None:
            raise Conflict(f"checkpoint {checkpoint_id} was just deleted; retry the request")
        return self._flights.do(checkpoint_id, lambda: self._make(job_id, checkpoint, loaded)).row.data

    def _make(self, job_id: int, checkpoint: Checkpoint, loaded: LoadedCheckpoint | None) -> Exported:
        with self.session_factory() as session:  # a flight that ended just before this one may have stored it
            stored = exports.find_export(session, checkpoint.id, ONNX)
        if stored is not None:
            return Exported(stored, cached=True)
        if loaded is None:
            data = checked_bytes(jobs.read_checkpoint_data(self.session_factory, checkpoint.id), checkpoint)
            loaded = load_checkpoint(data)
        with self._slot:
            made = export_onnx(loaded, job_id=job_id, checkpoint_sha256=checkpoint.sha256, data_dir=self.data_dir)
        log.info("exported job %s epoch %s to ONNX in %.1f s", job_id, checkpoint.epoch, made.seconds)
        row = ModelExport(
            checkpoint_id=checkpoint.id,
            format=ONNX,
            checkpoint_sha256=checkpoint.sha256,
            sha256=made.sha256,
            size=len(made.data),
            max_abs_diff=made.max_abs_diff,
            seconds=made.seconds,
            card=made.card,
            data=made.data,
        )
        return Exported(self._store(row), cached=False)

    def _store(self, row: ModelExport) -> ModelExport:
        """Store `row`; when another process stored one first, that one; when the checkpoint is gone, `row`."""
        with self.session_factory() as session:
            begin_write(session)
            try:
                exports.add_export(session, row)
                session.commit()
            except IntegrityError:
                session.rollback()
                return exports.find_export(session, row.checkpoint_id, row.format) or row
        return row
