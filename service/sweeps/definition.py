"""What a client sends to start a sweep: base spec, space, sampler, pruner, metric and limits."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.jobspec.spec import JobRequest

SamplerName = Literal["grid", "random", "tpe"]
MetricName = Literal["test_acc", "test_loss", "train_acc", "train_loss"]


class PrunerSpec(BaseModel):
    """When to stop a trial early, judged at each epoch's end (`none`, `median` or `asha`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Literal["none", "median", "asha"] = "none"
    startup_trials: int = Field(1, ge=0, le=1000, description="median: finished trials needed before pruning.")
    warmup_epochs: int = Field(0, ge=0, le=1000, description="median: epochs a trial runs before it can be pruned.")
    min_epochs: int = Field(1, ge=1, le=1000, description="asha: epochs at the first rung.")
    reduction_factor: int = Field(3, ge=2, le=100, description="asha: 1/reduction_factor of trials go on per rung.")


class MetricSpec(BaseModel):
    """The epoch metric a sweep optimizes, and whether higher or lower is better."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: MetricName = "test_acc"
    goal: Literal["max", "min"] = "max"


class SweepDefinition(BaseModel):
    """A hyper-parameter search over dotted job-spec paths; each trial is an ordinary job."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "lr x batch",
                    "base": {"architecture": "bn_lenet", "epochs": 2, "train_subset": 4096, "test_subset": 1000},
                    "space": {"optimizer.lr": {"values": [0.1, 0.3, 0.9]}, "batch_size": {"values": [64, 128]}},
                    "sampler": "grid",
                }
            ]
        },
    )

    name: str = Field("sweep", min_length=1, max_length=200)
    base: JobRequest
    space: dict[str, dict[str, Any]] = Field(
        description='Dotted spec path -> {"values": [...]}, {"low": a, "high": b, "log": bool, "step": s, '
        '"count": n} or {"choices": [...]}.',
        max_length=32,
    )
    sampler: SamplerName = "tpe"
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    metric: MetricSpec = Field(default_factory=MetricSpec)
    max_trials: int | None = Field(None, ge=1, le=10_000, description="Default: the grid's size (grid), else 20.")
    max_concurrent: int = Field(2, ge=1, le=1000, description="Trials queued or running at once.")
    max_failed: int = Field(3, ge=1, le=10_000, description="The sweep ends failed after this many failed trials.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds the sampler (trial n uses a seed derived from it).")
    priority: int = Field(0, ge=-1000, le=1000, description="The queue priority of the trials' jobs.")

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class SweepUpdate(BaseModel):
    """A change to a sweep: raise `max_trials` (a finished sweep runs the new trials only)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_trials: int = Field(ge=1, le=10_000)
