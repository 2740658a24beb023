"""The words of a job's life: its status, why a run stopped, how `fit()` ended; shared by every package and the wire.

Nothing outside this module spells a status or a stop reason as a bare string (templates print the values).
"""

import enum


class JobStatus(enum.StrEnum):
    """A job's lifecycle: queued -> running -> succeeded | failed | cancelled (running -> queued on requeue)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the job has reached a final status."""
        return self in FINISHED

    @property
    def active(self) -> bool:
        """Whether the job is still waiting or training."""
        return not self.finished


FINISHED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class SweepStatus(enum.StrEnum):
    """A sweep's lifecycle: running -> succeeded | failed (too many failed trials) | cancelled; PATCH reopens."""

    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class StopReason(enum.StrEnum):
    """Why a worker asks `fit()` to stop at the next batch."""

    lease_lost = "lease lost"
    cancelled = "cancelled"
    pruned = "pruned"
    shutdown = "shutdown"


class FitStatus(enum.StrEnum):
    """How a `fit()` call ended: every epoch done, stopped on request, the loss blew up, or early stopping ended it
    (the test metric stopped improving: a success, like `completed`)."""

    completed = "completed"
    stopped = "stopped"
    diverged = "diverged"
    early_stopped = "early stopped"
