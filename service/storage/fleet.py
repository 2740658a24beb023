"""The fleet: what each worker can run, which jobs a worker may claim, and why a queued job waits.

A worker states its device kind (cpu or cuda), name, memory and count (GPUs, or CPU cores) when it registers.
A job asks for a device (cpu, cuda or auto) and a number of processes. A worker claims a job of its own kind,
or `auto`, that needs no more processes than it has devices; `job_fits` and `runnable_by` are the same rule,
in Python and in SQL.
"""

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm import Session

from service.jobspec.status import JobStatus
from service.storage.jobs import recent_workers
from service.storage.orm import Job, Worker


@dataclass(frozen=True)
class Capabilities:
    """What a worker can run: its device kind ("cpu" or "cuda"), name, memory in bytes, and device count."""

    kind: str
    name: str
    memory: int | None
    count: int


def capabilities_of(worker: Worker) -> Capabilities:
    """The capabilities a worker registered."""
    return Capabilities(worker.device_kind, worker.device_name or "", worker.device_memory, worker.device_count)


def job_fits(capabilities: Capabilities, *, device: str, processes: int) -> bool:
    """Whether a worker with `capabilities` can run a job on `device` with `processes` processes."""
    return device in (capabilities.kind, "auto") and processes <= capabilities.count


def runnable_by(capabilities: Capabilities) -> ColumnElement[bool]:
    """The SQL condition on jobs that `job_fits` states."""
    return and_(Job.device.in_((capabilities.kind, "auto")), Job.processes <= capabilities.count)


def _units(kind: str) -> str:
    return "GPUs" if kind == "cuda" else "cores"


def _alive(workers: list[Worker]) -> str:
    kinds = Counter(w.device_kind for w in workers)
    if not kinds:
        return "no workers alive"
    parts = [f"{n} {kind} worker{'s' if n > 1 else ''}" for kind, n in sorted(kinds.items())]
    return f"{' and '.join(parts)} alive"


def waiting_reason(job: Job, workers: list[Worker]) -> str | None:
    """Why queued `job` waits when none of the live `workers` can run it; None if one can (or it is not queued)."""
    if job.status is not JobStatus.queued:
        return None
    fits = [w for w in workers if job_fits(capabilities_of(w), device=job.device, processes=job.processes)]
    if fits:
        return None
    kind = "a worker" if job.device == "auto" else f"a {job.device} worker"
    if job.processes > 1:
        unit = "devices" if job.device == "auto" else _units(job.device)
        kind += f" with {job.processes} {unit}"
    alive = _alive(workers)
    same = [w.device_count for w in workers if job.device in (w.device_kind, "auto")]
    if job.processes > 1 and same:
        alive += f" (the most {_units(job.device) if job.device != 'auto' else 'devices'} one has: {max(same)})"
    return f"waiting for {kind}; {alive}"


def live_workers(session: Session, *, lease_seconds: float) -> list[Worker]:
    """Workers seen within three lease periods (as /health counts them)."""
    return recent_workers(session, within_seconds=3 * lease_seconds)
