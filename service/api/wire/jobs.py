"""Wire types of jobs: what is submitted and what is read back."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus

JOB_EXAMPLE: dict[str, Any] = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 2,
    "batch_size": 256,
    "optimizer": {"name": "sgd", "lr": 1.0},
    "seed": 0,
}


class JobCreate(JobRequest):
    """A job to queue: the training spec (omitted fields get the book's recipe) and a queue priority."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                JOB_EXAMPLE,
                {"architecture": "resnet18", "epochs": 1, "train_subset": 2048, "resize": 96, "priority": 5},
            ]
        },
    )

    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first; ties run oldest first.")

    def to_request(self) -> JobRequest:
        """The training spec as submitted, without the queue priority."""
        return JobRequest.model_validate(self.model_dump(exclude={"priority"}))


class JobRead(BaseModel):
    """A job: status, the full spec with defaults filled in, progress, outcome and provenance."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[1])
    status: JobStatus = Field(examples=["queued"])
    spec: dict[str, Any] = Field(description="The complete spec, with the book's defaults filled in.")
    priority: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    attempt: int = Field(description="How many times a worker has claimed the job.")
    cancel_requested: bool
    epoch: int = Field(description="Completed epochs.")
    total_epochs: int | None = None
    step: int = Field(description="Completed training steps (batches).")
    total_steps: int | None = None
    images_per_sec: float | None = None
    eta_seconds: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    convlab_version: str | None = None
    torch_version: str | None = None
    dataset_checksum: str | None = None
    owner: str | None = Field(
        None, validation_alias="owner_name", description="The name of the token that submitted it (None: auth off)."
    )
    waiting_reason: str | None = Field(
        None,
        description="Why a queued job waits: no live worker can run it.",
        examples=["waiting for a cuda worker; 2 cpu workers alive"],
    )


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    items: list[JobRead]
    total: int = Field(description="Jobs matching the filter, over all pages.")
    limit: int
    offset: int
