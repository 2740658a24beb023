"""Jobs side by side, for `GET /compare` and the dashboard alike: which jobs (one parser, one limit), their
histories aligned by step and epoch, and the spec fields that differ."""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from service.errors import InvalidInput
from service.jobspec.paths import diff
from service.records import History
from service.storage.jobs import get_job, read_history
from service.storage.orm import Job

EPOCH_FIELDS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")
MAX_COMPARED = 16  # jobs in one comparison
MAX_JOB_ID = 2**63 - 1
PARAMETER = "jobs (query parameter)"


def parse_job_ids(values: Sequence[str]) -> list[int]:
    """Job ids from `1,2,3` or repeated `jobs=` values, in order; InvalidInput naming the parameter when one is
    not a job id, one repeats, or there are more than MAX_COMPARED (none is allowed: the caller decides)."""
    try:
        ids = [int(part) for value in values for part in value.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"{PARAMETER}: {','.join(values)!r} is not a comma-separated list of job ids") from None
    if len(ids) > MAX_COMPARED:
        raise InvalidInput(f"{PARAMETER}: give 1 to {MAX_COMPARED} job ids, not {len(ids)}")
    if any(not 1 <= i <= MAX_JOB_ID for i in ids):
        raise InvalidInput(f"{PARAMETER}: job ids are positive 64-bit integers")
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"{PARAMETER}: a job id repeats")
    return ids


class StepRow(BaseModel):
    step: int
    loss: list[float | None] = Field(description="Each job's training loss at this step (null: not logged).")


class EpochRow(BaseModel):
    epoch: int
    metrics: dict[str, list[float | None]] = Field(description="Each metric, one value per job (null: no epoch).")


class Comparison(BaseModel):
    """The jobs in the order asked, what differs in their specs, and their aligned histories."""

    jobs: list[int]
    statuses: list[str]
    differing: dict[str, list[Any]] = Field(description="Dotted spec path -> each job's value, where they differ.")
    steps: list[StepRow]
    epochs: list[EpochRow]


def load_compared(session: Session, job_ids: list[int]) -> tuple[list[Job], list[History]]:
    """The jobs `job_ids` and their whole histories, read once; NotFound naming the first that does not exist."""
    jobs = [get_job(session, job_id) for job_id in job_ids]
    return jobs, [read_history(session, job_id)[0] for job_id in job_ids]


def compare_jobs(session: Session, job_ids: list[int]) -> Comparison:
    """Compare the jobs `job_ids`; NotFound naming the first that does not exist."""
    jobs, histories = load_compared(session, job_ids)
    differing = diff([job.spec for job in jobs])
    losses = [{r.step: r.loss for r in h.steps} for h in histories]
    epochs = [{r.epoch: r for r in h.epochs} for h in histories]
    step_rows = [StepRow(step=s, loss=[by.get(s) for by in losses]) for s in sorted(set().union(*losses))]
    epoch_rows = [
        EpochRow(
            epoch=e,
            metrics={f: [getattr(by[e], f) if e in by else None for by in epochs] for f in EPOCH_FIELDS},
        )
        for e in sorted(set().union(*epochs))
    ]
    statuses = [job.status.value for job in jobs]
    return Comparison(jobs=job_ids, statuses=statuses, differing=differing, steps=step_rows, epochs=epoch_rows)
