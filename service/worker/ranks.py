"""A distributed job's processes: spawn one rank per process, let rank 0 record, requeue the job if one dies.

The worker process itself trains nothing here: it spawns the ranks (torch.multiprocessing, spawn), passes on a
shutdown, and waits. Rank 0 is a worker of its own on the database (same worker id and lease): it heartbeats,
records history and checkpoints and ends the job, exactly as a one-process worker does. When any rank dies or
raises, torch ends the others; the job goes back to the queue, counted as a lost worker (so a job that always
fails this way ends failed after `max_lost_leases`), and resumes from its last checkpoint, at any process count.
"""

import logging
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

import torch.multiprocessing as mp
from sqlalchemy.orm import Session, sessionmaker
from torch.multiprocessing.spawn import ProcessContext, ProcessException, start_processes

from service.config import Settings
from service.errors import LeaseLost
from service.jobspec.spec import JobSpec
from service.jobspec.status import JobStatus
from service.storage.jobs import add_status_event
from service.storage.orm import Job
from service.training import fit
from service.training.distributed import free_port, process_group, rank_device
from service.training.group import Group
from service.worker.datasets import cache_dir, dataset_file
from service.worker.leases import Lease, begin_fenced

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
# Rank 0's work as a worker of its own: (settings, worker id, shutdown, lease, spec, resume_from, device, group).
# The worker loop passes its own function (a module-level one, so that the spawned rank can import it).
RankZero = Callable[[Settings, str, threading.Event, Lease, JobSpec, bytes | None, str, Group], None]


class GroupOwner(Protocol):
    """The worker that spawns the ranks: what they and the requeue need of it."""

    settings: Settings
    worker_id: str
    shutdown: threading.Event
    session_factory: sessionmaker[Session]


def run_ranks(
    worker: GroupOwner, spec: JobSpec, lease: Lease, resume_from: bytes | None, *, rank_zero: RankZero
) -> None:
    """Train `spec` across `spec.processes` ranks; requeue (or, too often lost, fail) the job if a rank fails."""
    # A pipe, not an Event: setting a multiprocessing Event blocks for good once a rank that waited on it died.
    # Rank 0 watches the read end: a message asks it to stop; end of file means this worker is gone.
    stop, ask_stop = mp.get_context("spawn").Pipe(duplex=False)
    local = dataset_file(worker.session_factory, spec, cache_dir(worker.settings))  # fetched once, for every rank
    args = (worker.settings, worker.worker_id, lease, spec, resume_from, free_port(), stop, rank_zero, local)
    ranks: ProcessContext = start_processes(  # type: ignore[no-untyped-call]
        _rank_main, args=args, nprocs=spec.processes, join=False, start_method="spawn"
    )
    asked = False
    try:
        while not ranks.join(timeout=POLL_SECONDS):
            if worker.shutdown.is_set() and not asked:
                ask_stop.send_bytes(b"stop")  # rank 0 stops the group at the next batch, checkpoints, requeues
                asked = True
    except ProcessException as exc:
        failure = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        message = f"rank {exc.error_index} of {spec.processes} failed ({failure})"
        log.warning("job %s: %s", lease.job_id, message)
        try:
            _settle_failed_group(worker, lease, message)
        except LeaseLost:
            log.info("job %s: already ended by rank 0", lease.job_id)
    finally:
        stop.close()
        ask_stop.close()


def _settle_failed_group(worker: GroupOwner, lease: Lease, message: str) -> None:
    """Count the failure as a lost worker and requeue the job, or end it failed once it was lost too often."""
    with worker.session_factory() as session:
        begin_fenced(session, lease, lost_leases=Job.lost_leases + 1)
        job = session.get_one(Job, lease.job_id, populate_existing=True)
        if job.lost_leases >= worker.settings.queue.max_lost_leases:
            job.status, job.error = JobStatus.failed, f"{message}; lost {job.lost_leases} times"
            reason = "a rank failed too often"
        else:
            job.status, reason = JobStatus.queued, f"requeued: {message}"
        job.lease_owner = job.lease_expires_at = None
        add_status_event(session, job, reason=reason)
        session.commit()


def _rank_main(
    rank: int,
    settings: Settings,
    worker_id: str,
    lease: Lease,
    spec: JobSpec,
    resume_from: bytes | None,
    port: int,
    stop: Connection,
    rank_zero: RankZero,
    local: Path | None,
) -> None:
    """One rank: join the group and train; rank 0 also records and ends the job like a worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the worker, which stops the group cleanly
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s rank {rank} %(name)s: %(message)s")
    device = rank_device(settings.device, rank)
    log.info("job %s: rank %d of %d on %s, pid %d", lease.job_id, rank, spec.processes, device, os.getpid())
    with process_group(rank, spec.processes, port=port, device=device) as group:
        if not group.reports:
            fit(
                spec,
                data_dir=settings.data_dir,
                resume_from=resume_from,
                device=str(device),
                group=group,
                dataset_file=local,
            )
            return
        shutdown = threading.Event()
        threading.Thread(target=_watch, args=(stop, shutdown), daemon=True).start()
        rank_zero(settings, worker_id, shutdown, lease, spec, resume_from, str(device), group)


def _watch(stop: Connection, shutdown: threading.Event) -> None:
    """Set `shutdown` once the worker asks the group to stop, or is gone (the pipe's end of file)."""
    stop.poll(None)
    shutdown.set()
