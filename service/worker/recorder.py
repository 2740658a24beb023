"""The worker's training callbacks: persist what `fit()` reports, fenced by the lease, and decide when to stop."""

import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from service import __version__
from service.jobspec.status import StopReason
from service.storage.db import ensure_room
from service.storage.orm import Job
from service.sweeps import Decision, judge_epoch
from service.training import Callbacks, Checkpoint, DownloadProgress, EpochRecord, Progress, RunInfo, StepRecord
from service.training.environment import describe_environment
from service.worker.attempts import record_checkpoint, record_download, record_epoch, record_progress, record_start
from service.worker.heartbeat import Heartbeat
from service.worker.leases import Lease

PROGRESS_WRITE_SECONDS = 0.5  # at most this often to the database


class JobRecorder(Callbacks):
    """Writes a job's provenance, progress, loss points, epochs and checkpoints for the attempt in `lease`.

    Loss points are buffered and written with the next progress, epoch or checkpoint write, so every point
    up to a checkpoint is stored in the same transaction as (or before) the checkpoint.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        lease: Lease,
        *,
        heartbeat: Heartbeat,
        shutdown: threading.Event,
        keep_checkpoints: int,
        batch_size: int,
    ) -> None:
        self.session_factory = session_factory
        self.lease = lease
        self.heartbeat = heartbeat
        self.shutdown = shutdown
        self.keep_checkpoints = keep_checkpoints
        self.batch_size = batch_size
        self.pending: list[StepRecord] = []
        self.start_step = 0
        self.last_write = 0.0
        self.epochs = 0
        self.pruned: Decision | None = None  # set when the sweep's pruner stops this trial

    def stop_reason(self) -> StopReason | None:
        """Why training should stop now, or None to go on."""
        if self.heartbeat.lost.is_set():
            return StopReason.lease_lost
        if self.heartbeat.cancel_requested.is_set():
            return StopReason.cancelled
        if self.pruned is not None:
            return StopReason.pruned
        if self.shutdown.is_set():
            return StopReason.shutdown
        return None

    def should_stop(self) -> bool:
        """Stop at the next batch boundary when the lease is gone, a cancel arrived, or the worker stops."""
        return self.stop_reason() is not None

    def on_start(self, info: RunInfo) -> None:
        """Store provenance and totals."""
        self.start_step = info.resumed_from_step
        self.epochs = info.epochs
        environment = describe_environment(info, convlab_version=__version__)
        with self.session_factory() as session:
            record_start(session, self.lease, info=info, convlab_version=__version__, environment=environment)
            session.commit()

    def on_download(self, progress: DownloadProgress) -> None:
        """Store a `download` event: the job's followers see its dataset arrive."""
        with self.session_factory() as session:
            record_download(session, self.lease, progress)
            session.commit()

    def on_step(self, record: StepRecord) -> None:
        """Buffer a loss point."""
        self.pending.append(record)

    def on_progress(self, progress: Progress) -> None:
        """Store progress (and buffered points) at most every PROGRESS_WRITE_SECONDS."""
        now = time.monotonic()
        if now - self.last_write < PROGRESS_WRITE_SECONDS:
            return
        self.last_write = now
        steps_done = progress.step - self.start_step
        rate = steps_done / progress.elapsed_seconds if progress.elapsed_seconds > 0 else 0.0
        eta = (progress.total_steps - progress.step) / rate if rate > 0 else None
        with self.session_factory() as session:
            record_progress(
                session,
                self.lease,
                points=self.pending,
                epoch=progress.epoch,
                step=progress.step,
                images_per_sec=rate * self.batch_size if rate > 0 else None,
                eta_seconds=eta,
            )
            session.commit()
        self.pending = []

    def on_epoch(self, record: EpochRecord) -> None:
        """Store the epoch's metrics and its event; a sweep's trial is judged by its pruner in the same write."""
        with self.session_factory() as session:
            record_epoch(session, self.lease, record=record, points=self.pending)
            if record.epoch < self.epochs:  # after the last epoch there is nothing left to save
                decision = judge_epoch(session, session.get_one(Job, self.lease.job_id), epoch=record.epoch)
                self.pruned = decision if decision is not None and decision.prune else None
            session.commit()
        self.pending = []

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store the checkpoint and prune old ones; DiskFull first where a SQLite disk has no room for it (twice
        its size: once in the write-ahead log, once in the database file)."""
        ensure_room(self.session_factory.kw["bind"].url, 2 * len(checkpoint.data))
        with self.session_factory() as session:
            record_checkpoint(
                session, self.lease, checkpoint=checkpoint, points=self.pending, keep=self.keep_checkpoints
            )
            session.commit()
        self.pending = []
