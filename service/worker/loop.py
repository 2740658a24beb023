"""The worker process: claim a job, train it with the recorder's callbacks, persist the outcome, repeat.

`convlab worker` runs `run_worker`; SIGTERM/SIGINT set `shutdown`, which stops training at the next batch
boundary with a checkpoint and returns the job to the queue.
"""

import logging
import os
import socket
import threading
import uuid
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.errors import LeaseLost
from service.jobspec.spec import JobSpec
from service.jobspec.status import FitStatus, JobStatus, StopReason
from service.storage.db import is_disk_full, make_engine, make_session_factory
from service.storage.fleet import Capabilities
from service.storage.orm import Job
from service.storage.sweeps import sweeps_wanting_trials, trial_of_job
from service.sweeps import advance_sweep
from service.telemetry.logs import job_context
from service.training import FitResult, fit
from service.training.group import Group
from service.worker.attempts import result_summary, start_attempt
from service.worker.capabilities import worker_capabilities
from service.worker.datasets import cache_dir, dataset_file, init_weights
from service.worker.heartbeat import Heartbeat
from service.worker.leases import Lease, claim_next_job, finish_job, register_worker, requeue_job, touch_worker
from service.worker.ranks import run_ranks
from service.worker.recorder import JobRecorder

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    """A worker id unique across hosts and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class JobWorker:
    """One worker: its identity, settings, database sessions and the shutdown flag."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    shutdown: threading.Event
    worker_id: str
    capabilities: Capabilities | None = None  # None: claims any job (in-process tests)

    @classmethod
    def create(cls, settings: Settings, *, shutdown: threading.Event | None = None) -> "JobWorker":
        """A worker on `settings.database_url`, registered with its capabilities; `close()` it when done."""
        engine = make_engine(settings.database_url)
        factory = make_session_factory(engine)
        capabilities = worker_capabilities(settings)
        worker = cls(settings, engine, factory, shutdown or threading.Event(), new_worker_id(), capabilities)
        with factory() as session:
            register_worker(
                session,
                worker_id=worker.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                retention_seconds=settings.queue.worker_retention_seconds,
                capabilities=capabilities,
            )
            session.commit()
        log.info("worker %s: %s", worker.worker_id, capabilities)
        return worker

    def close(self) -> None:
        """Release the worker's database connections."""
        self.engine.dispose()

    def run(self, *, burst: bool = False) -> int:
        """Process jobs until shutdown (or, with `burst`, until the queue is empty); return how many ran."""
        done = 0
        while not self.shutdown.is_set():
            try:
                claimed = self.run_next()
            except SQLAlchemyError:
                log.exception("worker %s: database error; retrying", self.worker_id)
                self.shutdown.wait(self.settings.queue.poll_seconds)
                continue
            if claimed:
                done += 1
            elif burst:
                break
            else:
                self.shutdown.wait(self.settings.queue.poll_seconds)
        log.info("worker %s stopping after %d job(s)", self.worker_id, done)
        return done

    def run_next(self) -> bool:
        """Claim and run one job; False if there was nothing to claim."""
        with self.session_factory() as session:
            claimed = claim_next_job(
                session,
                worker_id=self.worker_id,
                lease_seconds=self.settings.queue.lease_seconds,
                max_lost_leases=self.settings.queue.max_lost_leases,
                capabilities=self.capabilities,
            )
            touch_worker(session, self.worker_id, current_job_id=claimed[1].job_id if claimed else None)
            session.commit()
        if claimed is None:
            # Heal sweeps left short of trials (a worker died between ending a trial and advancing its sweep).
            return self._advance_sweeps(None) > 0 and self.run_next()
        job, lease = claimed
        try:
            with job_context(lease.job_id, lease.attempt):
                log.info("worker %s: job %s attempt %s", self.worker_id, lease.job_id, lease.attempt)
                self.run_job(job, lease)
        except LeaseLost as exc:
            log.warning("%s; leaving the job to its new owner", exc)
        except SQLAlchemyError as exc:
            if not (is_disk_full(exc) and self._fail_on_full_disk(lease, exc)):
                # The database failed us mid-job: the lease runs out and a worker resumes from the last checkpoint.
                log.exception("job %s: database error; abandoning the attempt", lease.job_id)
                self.shutdown.wait(self.settings.queue.poll_seconds)
        return True

    def _fail_on_full_disk(self, lease: Lease, exc: SQLAlchemyError) -> bool:
        """End the job failed saying the database's disk is full (retrying would only fill it again); False if even
        that small write did not fit."""
        reason = "the database's disk is full: free space, then re-run the job (POST /jobs/{id}/clone)"
        try:
            self._finish(
                lease, JobStatus.failed, reason=reason, error=_message(getattr(exc, "orig", None) or exc)
            )  # no SQL
        except SQLAlchemyError:
            return False
        return True

    def run_job(self, job: Job, lease: Lease) -> None:
        """Train the claimed job from its last checkpoint (in this process, or across its ranks) and end it."""
        try:
            spec = job.read_spec()
            resume_from = self._prepare_resume(lease)
        except (LeaseLost, SQLAlchemyError):
            raise
        except Exception as exc:
            log.exception("job %s failed", lease.job_id)
            self._finish(lease, JobStatus.failed, reason="training raised an error", error=_message(exc))
            return
        if spec.processes > 1:
            run_ranks(self, spec, lease, resume_from, rank_zero=record_as_rank_zero)
        else:
            self.train_job(spec, lease, resume_from)

    def train_job(
        self, spec: JobSpec, lease: Lease, resume_from: bytes | None, *, device: str = "", group: Group | None = None
    ) -> None:
        """Train `spec` in this process (alone, or as rank 0 of `group`) and store how it ended."""
        try:
            result, stop_reason = self._train(
                spec, lease, resume_from, device=device or self.settings.device, group=group
            )
        except (LeaseLost, SQLAlchemyError):
            raise
        except Exception as exc:
            if group is not None:
                raise  # maybe another rank died: the worker that spawned the group decides (worker/ranks.py)
            log.exception("job %s failed", lease.job_id)
            self._finish(lease, JobStatus.failed, reason="training raised an error", error=_message(exc))
            return
        self._conclude(lease, result, stop_reason)

    def _train(
        self, spec: JobSpec, lease: Lease, resume_from: bytes | None, *, device: str, group: Group | None
    ) -> tuple[FitResult, StopReason | None]:
        """Run `fit()` with the recorder while a heartbeat holds the lease; return the result and stop reason."""
        lease_seconds = self.settings.queue.lease_seconds
        interval = min(lease_seconds / 3, self.settings.queue.poll_seconds)
        with Heartbeat(self.session_factory, lease, lease_seconds=lease_seconds, interval=interval) as heartbeat:
            recorder = JobRecorder(
                self.session_factory,
                lease,
                heartbeat=heartbeat,
                shutdown=self.shutdown,
                keep_checkpoints=spec.keep_checkpoints or self.settings.queue.keep_checkpoints,
                batch_size=spec.batch_size,
            )
            result = fit(
                spec,
                data_dir=self.settings.data_dir,
                callbacks=recorder,
                resume_from=resume_from,
                device=device,
                allow_download=self.settings.allow_download,
                group=group,
                dataset_mirror=self.settings.downloads.mirror,
                dataset_file=dataset_file(self.session_factory, spec, cache_dir(self.settings)),
                init_weights=init_weights(self.session_factory, spec) if resume_from is None else None,
            )
            return result, recorder.stop_reason()

    def _prepare_resume(self, lease: Lease) -> bytes | None:
        """The last checkpoint's bytes (None: start fresh), after dropping history written past it."""
        with self.session_factory() as session:
            checkpoint = start_attempt(session, lease)
            session.commit()
        return checkpoint.data if checkpoint else None

    def _conclude(self, lease: Lease, result: FitResult, stop_reason: StopReason | None) -> None:
        if result.status in (FitStatus.completed, FitStatus.early_stopped):
            summary = result_summary(
                result.final_metrics, result.best_metrics, epochs=result.epochs_completed, steps=result.step
            )
            self._finish(lease, JobStatus.succeeded, reason=result.message, result=summary)
        elif result.status is FitStatus.diverged:
            self._finish(lease, JobStatus.failed, reason="training diverged", error=result.message)
        elif stop_reason is StopReason.cancelled:
            self._finish(lease, JobStatus.cancelled, reason=f"cancel requested; {result.message}")
        elif stop_reason is StopReason.pruned:
            self._finish(lease, JobStatus.cancelled, reason=f"pruned by its sweep; {result.message}")
        elif stop_reason is StopReason.shutdown:
            with self.session_factory() as session:
                requeue_job(session, lease, reason=f"worker shutting down; {result.message}")
                session.commit()
        else:
            raise LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} stopped ({stop_reason})")

    def _finish(
        self,
        lease: Lease,
        status: JobStatus,
        *,
        reason: str,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        with self.session_factory() as session:
            finish_job(session, lease, status=status, reason=reason, error=error, result=result)
            session.commit()
        log.info("job %s %s: %s", lease.job_id, status.value, reason)
        self._advance_sweeps(lease.job_id)

    def _advance_sweeps(self, job_id: int | None) -> int:
        """Advance the sweep of the trial `job_id` (None: every running sweep short of trials); new trials."""
        with self.session_factory() as session:
            if job_id is None:
                sweep_ids = sweeps_wanting_trials(session)
            else:
                trial = trial_of_job(session, job_id)
                sweep_ids = [trial.sweep_id] if trial is not None else []
        added = 0
        for sweep_id in sweep_ids:
            with self.session_factory() as session:
                try:
                    added += len(advance_sweep(session, sweep_id))
                    session.commit()
                except SQLAlchemyError:
                    raise
                except Exception:  # a sweep that cannot advance must not take the worker down with it
                    log.exception("sweep %s could not advance", sweep_id)
        return added


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def run_worker(settings: Settings, *, shutdown: threading.Event | None = None, burst: bool = False) -> int:
    """Run a worker on `settings` until `shutdown` is set (or the queue is empty with `burst`)."""
    with closing(JobWorker.create(settings, shutdown=shutdown)) as worker:
        return worker.run(burst=burst)


def record_as_rank_zero(
    settings: Settings,
    worker_id: str,
    shutdown: threading.Event,
    lease: Lease,
    spec: JobSpec,
    resume_from: bytes | None,
    device: str,
    group: Group,
) -> None:
    """Rank 0 of a distributed job (worker/ranks.py): a worker of its own on the database, with the spawning
    worker's id and lease, that trains its share, records the history and checkpoints and ends the job."""
    engine = make_engine(settings.database_url)
    try:
        worker = JobWorker(settings, engine, make_session_factory(engine), shutdown, worker_id)
        worker.train_job(spec, lease, resume_from, device=device, group=group)
    finally:
        engine.dispose()
