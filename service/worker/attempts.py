"""What a worker records for the attempt it holds: run facts, progress, epochs, loss points and checkpoints.

Each function opens a fenced write transaction (`leases.begin_fenced`): if the attempt lost its lease, it
raises `LeaseLost` before writing anything. The caller commits.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, undefer

from service.storage.jobs import add_event, list_checkpoints
from service.storage.orm import Checkpoint, EpochMetric, Job, JobEvent, LossPoint
from service.storage.retention import prunable
from service.training import Checkpoint as TrainingCheckpoint
from service.training import DownloadProgress, EpochRecord, RunInfo, StepRecord
from service.worker.leases import Lease, begin_fenced

CHECKPOINT_FORMAT = "safetensors"


def latest_checkpoint(session: Session, job_id: int) -> Checkpoint | None:
    """The job's checkpoint with the highest step, bytes loaded; None if it has none."""
    query = select(Checkpoint).options(undefer(Checkpoint.data)).where(Checkpoint.job_id == job_id)
    return session.scalars(query.order_by(Checkpoint.step.desc()).limit(1)).first()


def start_attempt(session: Session, lease: Lease) -> Checkpoint | None:
    """Fence a new attempt and return the checkpoint to resume from (None: start fresh).

    History a lost attempt wrote past that checkpoint is deleted, so the job's history stays contiguous.
    """
    begin_fenced(session, lease)
    checkpoint = latest_checkpoint(session, lease.job_id)
    step, epoch = (checkpoint.step, checkpoint.epoch) if checkpoint else (0, 0)
    job_id = lease.job_id
    session.execute(update(Job).where(Job.id == job_id).values(step=step, epoch=epoch))
    session.execute(delete(LossPoint).where(LossPoint.job_id == job_id, LossPoint.step > step))
    session.execute(delete(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch > epoch))
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step > step))
    _mark_superseded(session, lease, after_epoch=epoch)
    return checkpoint


def _mark_superseded(session: Session, lease: Lease, *, after_epoch: int) -> None:
    """Flag the epoch events of earlier attempts past the resume point: this attempt trains those epochs again,
    so a replay of the event stream shows which curve points were replaced (`superseded_by_attempt`)."""
    stale = session.scalars(
        select(JobEvent).where(
            JobEvent.job_id == lease.job_id, JobEvent.kind == "epoch", JobEvent.attempt < lease.attempt
        )
    )
    for event in stale:
        if int(event.payload.get("epoch", 0)) > after_epoch and "superseded_by_attempt" not in event.payload:
            event.payload = {**event.payload, "superseded_by_attempt": lease.attempt}
    session.flush()


def record_start(
    session: Session, lease: Lease, *, info: RunInfo, convlab_version: str, environment: dict[str, Any]
) -> None:
    """Store the run's provenance (versions, dataset checksum), its totals and an "environment" event."""
    begin_fenced(
        session,
        lease,
        convlab_version=convlab_version,
        torch_version=info.torch_version,
        torchvision_version=info.torchvision_version,
        dataset_checksum=info.dataset_checksum,
        total_epochs=info.epochs,
        total_steps=info.total_steps,
    )
    add_event(session, session.get_one(Job, lease.job_id), kind="environment", payload=environment)
    session.flush()


def record_progress(
    session: Session,
    lease: Lease,
    *,
    points: Sequence[StepRecord],
    epoch: int,
    step: int,
    images_per_sec: float | None,
    eta_seconds: float | None,
) -> None:
    """Store buffered loss points and where training is."""
    values = {"epoch": epoch, "step": step, "images_per_sec": images_per_sec, "eta_seconds": eta_seconds}
    begin_fenced(session, lease, **values)
    _add_points(session, lease, points)


def record_epoch(session: Session, lease: Lease, *, record: EpochRecord, points: Sequence[StepRecord]) -> None:
    """Store a finished epoch's metrics (one row per epoch) with an event, and buffered loss points."""
    begin_fenced(session, lease, epoch=record.epoch, images_per_sec=record.images_per_sec)
    _add_points(session, lease, points)
    session.add(EpochMetric.from_record(record, job_id=lease.job_id, attempt=lease.attempt))
    job = session.get_one(Job, lease.job_id)
    add_event(session, job, kind="epoch", payload=asdict(record))
    session.flush()


def record_download(session: Session, lease: Lease, progress: DownloadProgress) -> None:
    """Store a `download` event: how much of a dataset file has arrived, and whether it was verified."""
    begin_fenced(session, lease)
    job = session.get_one(Job, lease.job_id)
    add_event(session, job, kind="download", payload=asdict(progress))
    session.flush()


def record_checkpoint(
    session: Session, lease: Lease, *, checkpoint: TrainingCheckpoint, points: Sequence[StepRecord], keep: int
) -> Checkpoint:
    """Store a checkpoint (and buffered loss points), then keep only the last `keep` plus the best."""
    begin_fenced(session, lease, step=checkpoint.step)
    _add_points(session, lease, points)
    # A stop exactly at an epoch's end repeats that step: the later snapshot replaces the earlier one.
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == lease.job_id, Checkpoint.step == checkpoint.step))
    row = Checkpoint(
        job_id=lease.job_id,
        attempt=lease.attempt,
        epoch=checkpoint.epoch,
        step=checkpoint.step,
        sha256=hashlib.sha256(checkpoint.data).hexdigest(),
        size=len(checkpoint.data),
        format=CHECKPOINT_FORMAT,
        metrics=asdict(checkpoint.metrics) if checkpoint.metrics is not None else None,
        data=checkpoint.data,
    )
    session.add(row)
    session.flush()
    prune_checkpoints(session, lease.job_id, keep=keep)
    return row


def prune_checkpoints(session: Session, job_id: int, *, keep: int) -> None:
    """Delete a job's checkpoints except the last `keep` (by step), the best and any that an export references."""
    job = session.get_one(Job, job_id)
    doomed = [c.id for c in prunable(session, job, list_checkpoints(session, job_id), keep=keep)]
    if doomed:
        session.execute(delete(Checkpoint).where(Checkpoint.id.in_(doomed)))


def result_summary(final: EpochRecord | None, best: EpochRecord | None, *, epochs: int, steps: int) -> dict[str, Any]:
    """The JSON result stored with a finished job: final and best epoch metrics and the counters."""
    return {
        "epochs_completed": epochs,
        "steps": steps,
        "final": asdict(final) if final is not None else None,
        "best": asdict(best) if best is not None else None,
    }


def _add_points(session: Session, lease: Lease, points: Sequence[StepRecord]) -> None:
    session.add_all(LossPoint.from_record(p, job_id=lease.job_id, attempt=lease.attempt) for p in points)
