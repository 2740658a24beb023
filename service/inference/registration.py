"""Registering a job's checkpoint as a model version: the checks, the verified ONNX export, the stored row.

The export is made (or found) before the version is written, so a version always has one and serving a
version never waits for an export.
"""

from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict
from service.inference.exporter import Exporter
from service.jobspec.status import JobStatus
from service.storage import jobs, registry
from service.storage.db import begin_write
from service.storage.orm import Checkpoint, ModelVersion


def chosen_checkpoint(session: Session, name: str, job_id: int, epoch: int | None) -> Checkpoint:
    """The checkpoint a registration means (the best, or the end of `epoch`) of a succeeded job."""
    registry.get_model(session, name)
    job = jobs.get_job(session, job_id)
    if job.status is not JobStatus.succeeded:
        raise Conflict(f"job {job_id} is {job.status.value}; only a succeeded job's checkpoint can be registered")
    return jobs.choose_checkpoint(session, job_id, epoch)


def register_version(
    factory: sessionmaker[Session], exporter: Exporter, *, name: str, job_id: int, epoch: int | None, by: str | None
) -> ModelVersion:
    """Model `name`'s next version: job `job_id`'s checkpoint (best, or of `epoch`) with its ONNX export."""
    with factory() as session:
        checkpoint = chosen_checkpoint(session, name, job_id, epoch)
    exported = exporter.export(job_id, checkpoint.epoch if epoch is not None else None).row
    if exported.checkpoint_id != checkpoint.id:
        raise Conflict(f"job {job_id}'s checkpoints changed during the registration; retry it")
    card = exported.card
    with factory() as session:
        begin_write(session)
        model = registry.get_model(session, name)
        version = registry.add_version(
            session,
            model,
            job_id=job_id,
            checkpoint_id=checkpoint.id,
            export_id=exported.id,
            source_job_id=job_id,
            epoch=checkpoint.epoch,
            checkpoint_sha256=checkpoint.sha256,
            onnx_sha256=exported.sha256,
            architecture=card["architecture"],
            dataset=card["dataset"],
            class_names=list(card["class_labels"]),
            metrics=checkpoint.metrics,
            card=card,
            created_by=by,
        )
        session.commit()
    return version
