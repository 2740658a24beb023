"""Wire types of the HTTP API: what clients send and receive (the ORM lives in service/storage/orm.py)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.access import Scope
from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.records import EpochRecord, StepRecord
from service.storage.fleet import waiting_reason
from service.storage.orm import Job, Worker


class FieldError(BaseModel):
    """One problem with one field of a request (422 answers list them in `errors`)."""

    loc: list[str | int] = Field(examples=[["body", "optimizer", "lr"]], description="Where: body, query, path...")
    msg: str = Field(examples=["Input should be greater than 0"])
    type: str = Field(examples=["greater_than"], description="pydantic's error type.")


class ErrorResponse(BaseModel):
    """Every error answer (4xx and 5xx): a human-readable `detail` naming the field and the problem; request
    validation errors (422) also list each problem in `errors`."""

    detail: str = Field(examples=["optimizer.lr: Input should be greater than 0"])
    errors: list[FieldError] | None = Field(None, description="422 only: each invalid field.")


class VersionRead(BaseModel):
    name: str = "convlab"
    version: str = Field(examples=["0.1.0"])
    python: str = Field(examples=["3.11.2"])
    torch: str = Field(examples=["2.14.1"])
    api: str = Field("1", description="Version of the HTTP contract.")


class HealthRead(BaseModel):
    status: str = Field(examples=["ok"], description="ok, or degraded when the database is unreachable.")
    database: bool = Field(description="The database answered a query.")
    database_error: str | None = None
    workers: list[dict[str, Any]] = Field(
        default_factory=list, description="Workers with a heartbeat in the last few lease periods."
    )
    workers_alive: int = 0


class Probe(BaseModel):
    """A liveness or readiness answer."""

    status: str = Field(examples=["ok"], description="ok, or unavailable (readiness) with the reason.")
    reason: str | None = None


class ArchitectureRead(BaseModel):
    name: str = Field(examples=["bn_lenet"])
    description: str
    default_input_size: int = Field(examples=[28])
    num_params: int = Field(description="Trainable parameters for 1 input channel and 10 classes.")


class LayerRead(BaseModel):
    name: str = Field(examples=["0"])
    kind: str = Field(examples=["Conv2d"])
    output_shape: list[int] = Field(examples=[[1, 6, 24, 24]])
    num_params: int


class ArchitectureSummary(ArchitectureRead):
    input_shape: list[int] = Field(examples=[[1, 1, 28, 28]])
    layers: list[LayerRead]


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

    @classmethod
    def of(cls, job: Job, workers: list[Worker]) -> "JobRead":
        """The job as sent, with its waiting reason among the live `workers`."""
        return cls.model_validate(job).model_copy(update={"waiting_reason": waiting_reason(job, workers)})


class TokenCreate(BaseModel):
    """A new API token: a unique name and the scopes it grants (`admin` implies all)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["alice-laptop"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope), examples=[["jobs:read", "jobs:write"]])


class TokenRead(BaseModel):
    """A token as listed: never its secret, only the first characters (`hint`) to recognise it by."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    hint: str = Field(examples=["cvl_Ab3x"])
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = None


class TokenCreated(TokenRead):
    """A token just made, with its secret: shown this once, stored only as a hash."""

    token: str = Field(description="The secret to send as `Authorization: Bearer <token>`.")


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    items: list[JobRead]
    total: int = Field(description="Jobs matching the filter, over all pages.")
    limit: int
    offset: int


class HistoryRead(BaseModel):
    """Training loss per logged step (downsampled on request) and metrics per finished epoch."""

    job_id: int
    steps: list[StepRecord]
    epochs: list[EpochRecord]
    total_steps_recorded: int = Field(description="Step points stored, before any downsampling.")


class CheckpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    epoch: int = Field(description="Completed epochs when it was taken.")
    step: int
    attempt: int
    sha256: str
    size: int = Field(description="Bytes of the safetensors file.")
    format: str = "safetensors"
    created_at: datetime
    metrics: EpochRecord | None = Field(None, description="The epoch's metrics; null mid-epoch.")
    best: bool = Field(False, description="The checkpoint predictions use by default (best test accuracy).")


class ClassScore(BaseModel):
    class_index: int = Field(examples=[9])
    label: str = Field(examples=["Ankle boot"])
    probability: float = Field(examples=[0.97])


class PredictionRead(ClassScore):
    top_k: list[ClassScore]


class PredictResponse(BaseModel):
    """Predictions in input order, and which checkpoint made them."""

    job_id: int
    checkpoint_epoch: int
    checkpoint_sha256: str
    predictions: list[PredictionRead]
