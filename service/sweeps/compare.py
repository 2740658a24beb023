"""Jobs side by side: histories aligned by step and epoch, and the spec fields that differ."""

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from service.storage.jobs import get_history, get_job

EPOCH_FIELDS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")


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


def flatten(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec as dotted path -> value."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def compare_jobs(session: Session, job_ids: list[int]) -> Comparison:
    """Compare the jobs `job_ids`; NotFound naming the first that does not exist."""
    jobs = [get_job(session, job_id) for job_id in job_ids]
    specs = [flatten(job.spec) for job in jobs]
    paths = sorted(set().union(*specs))
    differing = {p: [s.get(p) for s in specs] for p in paths if len({repr(s.get(p)) for s in specs}) > 1}
    histories = [get_history(session, job_id).records() for job_id in job_ids]
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
