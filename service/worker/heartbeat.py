"""The heartbeat: a thread that renews a job's lease and notices cancels, independent of the training loop."""

import logging
import threading
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import LeaseLost
from service.worker.leases import Lease, renew_lease, touch_worker

log = logging.getLogger(__name__)
JOIN_INTERVALS = 3  # how long the attempt waits for its heartbeat thread to stop: a few beats,
JOIN_GRACE_SECONDS = 5.0  # plus a little for a slow database


class Heartbeat:
    """Renews `lease` every `interval` seconds on its own thread and session; use as a context manager.

    `cancel_requested` is set once someone asked to cancel the job; `lost` once the lease was taken over.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], lease: Lease, *, lease_seconds: float, interval: float
    ) -> None:
        self.session_factory = session_factory
        self.lease = lease
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.cancel_requested = threading.Event()
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-job-{lease.job_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        # A beat stuck on the database must not hold the worker forever: wait a few intervals, then move on
        # (the thread is a daemon, and its next write is fenced by the attempt number anyway).
        self._thread.join(timeout=JOIN_INTERVALS * self.interval + JOIN_GRACE_SECONDS)
        if self._thread.is_alive():
            log.warning("job %s: heartbeat still busy after the attempt ended; leaving it", self.lease.job_id)

    def _run(self) -> None:
        while not self._done.wait(self.interval) and not self.lost.is_set():
            self.beat()

    def beat(self) -> None:
        """Renew the lease once; a database hiccup is logged and retried at the next beat."""
        try:
            with self.session_factory() as session:
                cancel = renew_lease(session, self.lease, lease_seconds=self.lease_seconds)
                touch_worker(session, self.lease.owner, current_job_id=self.lease.job_id)
                session.commit()
        except LeaseLost:
            log.warning("job %s: attempt %s lost its lease", self.lease.job_id, self.lease.attempt)
            self.lost.set()
            return
        except SQLAlchemyError as exc:
            log.warning("job %s: heartbeat failed (%s); retrying", self.lease.job_id, exc)
            return
        if cancel:
            self.cancel_requested.set()
