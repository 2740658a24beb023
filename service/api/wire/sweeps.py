"""Wire types of sweeps (the request is service/sweeps/definition.py; routers/sweeps.py fills these in)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.jobspec.status import JobStatus, SweepStatus


class TrialRead(BaseModel):
    """One trial: its number, job, parameters, status and the sweep's metric."""

    number: int = Field(examples=[0])
    job_id: int
    params: dict[str, Any] = Field(examples=[{"optimizer.lr": 0.1}])
    status: JobStatus
    state: str = Field(description="Optuna's view: RUNNING, COMPLETE, PRUNED or FAIL.", examples=["COMPLETE"])
    pruned_epoch: int | None = None
    value: float | None = Field(None, description="The metric at the trial's last finished epoch.")
    values: dict[int, float] = Field(default_factory=dict, description="The metric per finished epoch.")


class SweepSummary(BaseModel):
    """A sweep without its trials."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    status: SweepStatus
    base: dict[str, Any]
    space: dict[str, Any]
    sampler: str
    pruner: dict[str, Any]
    metric: str
    goal: str
    max_trials: int
    max_concurrent: int
    max_failed: int
    seed: int
    priority: int
    trials_asked: int
    created_at: datetime
    finished_at: datetime | None = None


class SweepRead(SweepSummary):
    """A sweep with its trials in number order and the best finished trial."""

    trials: list[TrialRead]
    best: TrialRead | None = Field(None, description="The finished trial with the best final metric.")


class SweepPage(BaseModel):
    """One page of sweeps, newest first."""

    items: list[SweepSummary]
    total: int
    limit: int
    offset: int
