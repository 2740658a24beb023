"""The ORM: jobs, their events, training history, checkpoints and their exports, workers, API tokens, datasets.

History rows convert to and from the training engine's records here, the one place the two meet.
"""

from dataclasses import asdict, fields
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.jobspec.spec import JobSpec
from service.jobspec.status import JobStatus, SweepStatus
from service.records import EpochRecord, StepRecord
from service.storage.db import Base, UTCDateTime, utcnow

# BIGINT on PostgreSQL, but INTEGER on SQLite so that it is the rowid (autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONValue = dict[str, Any]


def _fk(target: str) -> Any:
    return ForeignKey(target, ondelete="CASCADE")


R = TypeVar("R", EpochRecord, StepRecord)


class HistoryRow(Generic[R]):
    """A history table whose columns repeat one training record's fields, plus the job and the attempt."""

    record_type: ClassVar[type[Any]]

    @classmethod
    def from_record(cls, record: R, *, job_id: int, attempt: int) -> Self:
        """The row storing `record` for an attempt of a job."""
        return cls(**{"job_id": job_id, "attempt": attempt, **asdict(record)})

    def to_record(self) -> R:
        """The stored row as the training engine's record."""
        values = {f.name: getattr(self, f.name) for f in fields(self.record_type)}
        return cast(R, self.record_type(**values))


class Job(Base):
    """A training job: its spec, queue state (lease), progress, outcome and provenance."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "priority", "created_at"),
        Index("ix_jobs_owner_token_id_status", "owner_token_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    status: Mapped[JobStatus] = mapped_column(
        Enum(
            JobStatus,
            name="job_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda statuses: [s.value for s in statuses],
            validate_strings=True,
        ),
        default=JobStatus.queued,
    )
    spec: Mapped[JSONValue] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # queue: `attempt` counts claims and fences every worker write; lost_leases counts workers that vanished
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lost_leases: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    # progress
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    total_epochs: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    images_per_sec: Mapped[float | None] = mapped_column(Float)
    eta_seconds: Mapped[float | None] = mapped_column(Float)

    # outcome and provenance
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[JSONValue | None] = mapped_column(JSON)
    convlab_version: Mapped[str | None] = mapped_column(String(64))
    torch_version: Mapped[str | None] = mapped_column(String(64))
    torchvision_version: Mapped[str | None] = mapped_column(String(64))
    dataset_checksum: Mapped[str | None] = mapped_column(String(64))

    # ownership: the token that submitted the job (None with auth off; its name is kept after it is revoked)
    owner_token_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("api_tokens.id", ondelete="SET NULL"))
    owner_name: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))

    # placement (copied from the spec, so that a claim can filter on them): only a worker that can run it claims it
    device: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")  # cpu, cuda or auto
    processes: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    def read_spec(self) -> JobSpec:
        """The stored spec as the resolved type it was stored as (see JobSpec on rows older than a field)."""
        return JobSpec.model_validate(self.spec)

    @property
    def best_metric(self) -> str:
        """What makes a checkpoint this job's best: its early-stopping metric, else test accuracy."""
        rule = (self.spec or {}).get("early_stopping")
        return str(rule.get("metric", "test_acc")) if isinstance(rule, dict) else "test_acc"


class ApiToken(Base):
    """An API token: only the SHA-256 of its secret is stored; revoked tokens stay listed, refused."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))  # the first characters, to recognise a token in a list
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    predict_rate: Mapped[float | None] = mapped_column(Float)  # requests/s; None: the server's CONVLAB_PREDICT_RATE


class JobEvent(Base):
    """One status transition or finished epoch; the id is the Server-Sent Events id."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigId, _fk("jobs.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # "status", "epoch", "environment", "prune" or "download"
    payload: Mapped[JSONValue] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EpochMetric(HistoryRow[EpochRecord], Base):
    """The metrics of one finished epoch of a job (one row per epoch)."""

    __tablename__ = "epoch_metrics"
    record_type = EpochRecord
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigId, _fk("jobs.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float] = mapped_column(Float)
    train_acc: Mapped[float] = mapped_column(Float)
    test_loss: Mapped[float] = mapped_column(Float)
    test_acc: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    images_per_sec: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LossPoint(HistoryRow[StepRecord], Base):
    """The training loss at one global step (1-based)."""

    __tablename__ = "loss_points"
    record_type = StepRecord
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigId, _fk("jobs.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    examples_seen: Mapped[int] = mapped_column(BigInteger)
    loss: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    """A resumable snapshot (safetensors bytes); `epoch` counts completed epochs."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step"), Index("ix_checkpoints_job_id_epoch", "job_id", "epoch"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigId, _fk("jobs.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(32), default="safetensors")
    metrics: Mapped[JSONValue | None] = mapped_column(JSON)  # the epoch's EpochRecord; None mid-epoch
    # Loaded only when asked for, so listing checkpoints never reads megabytes of weights.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    @property
    def test_acc(self) -> float | None:
        """The test accuracy recorded with this checkpoint, if it ended an epoch."""
        value = (self.metrics or {}).get("test_acc")
        return float(value) if value is not None else None

    def score(self, metric: str) -> float | None:
        """How good this checkpoint is by `metric` (test_acc, or test_loss negated: higher is better), if recorded."""
        value = (self.metrics or {}).get(metric)
        if value is None:
            return None
        return -float(value) if metric.endswith("_loss") else float(value)


class ModelExport(Base):
    """A checkpoint exported to another format (ONNX), verified when it was made and served from here after."""

    __tablename__ = "model_exports"
    __table_args__ = (UniqueConstraint("checkpoint_id", "format"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    checkpoint_id: Mapped[int] = mapped_column(BigId, _fk("checkpoints.id"))  # pruned with its checkpoint
    format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))  # of `data`
    size: Mapped[int] = mapped_column(BigInteger)
    max_abs_diff: Mapped[float] = mapped_column(Float)  # largest |logit| difference against PyTorch when verified
    seconds: Mapped[float] = mapped_column(Float)  # export plus verification
    card: Mapped[JSONValue] = mapped_column(JSON)  # the model card, also inside the file's metadata
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class Worker(Base):
    """A worker process: when it started and was last seen (for /health), and what it can run."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    current_job_id: Mapped[int | None] = mapped_column(BigId)
    # capabilities, stated at registration: what kind of jobs it claims and how many processes it can give one
    device_kind: Mapped[str] = mapped_column(String(8), default="cpu", server_default="cpu")  # cpu or cuda
    device_name: Mapped[str | None] = mapped_column(String(255))
    device_memory: Mapped[int | None] = mapped_column(BigInteger)  # bytes (a GPU's, or the host's RAM)
    device_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # GPUs, or CPU cores


class Sweep(Base):
    """A hyper-parameter search: a base spec, a space of dotted spec paths, and how trials are proposed."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[SweepStatus] = mapped_column(
        Enum(
            SweepStatus,
            name="sweep_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda statuses: [s.value for s in statuses],
            validate_strings=True,
        ),
        default=SweepStatus.running,
    )
    base: Mapped[JSONValue] = mapped_column(JSON)  # the job spec every trial starts from
    space: Mapped[JSONValue] = mapped_column(JSON)  # dotted path -> {"values"|"low"/"high"|"choices": ...}
    sampler: Mapped[str] = mapped_column(String(16))
    pruner: Mapped[JSONValue] = mapped_column(JSON)
    metric: Mapped[str] = mapped_column(String(32))
    goal: Mapped[str] = mapped_column(String(8))  # "max" or "min"
    max_trials: Mapped[int] = mapped_column(Integer)
    max_concurrent: Mapped[int] = mapped_column(Integer)
    max_failed: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    trials_asked: Mapped[int] = mapped_column(Integer, default=0)  # the next trial number; never reused
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # who started it: its trials are jobs owned by the same token (as in Job)
    owner_token_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("api_tokens.id", ondelete="SET NULL"))
    owner_name: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))


class SweepTrial(Base):
    """One trial of a sweep: the job that runs it, its parameters, and what its pruner recorded."""

    __tablename__ = "sweep_trials"
    __table_args__ = (UniqueConstraint("sweep_id", "number"), UniqueConstraint("job_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sweep_id: Mapped[int] = mapped_column(BigId, _fk("sweeps.id"))
    number: Mapped[int] = mapped_column(Integer)  # 0-based, in the order trials were asked for
    job_id: Mapped[int] = mapped_column(BigId, _fk("jobs.id"))
    params: Mapped[JSONValue] = mapped_column(JSON)  # dotted path -> value
    pruned_epoch: Mapped[int | None] = mapped_column(Integer)  # set when the pruner stopped the trial
    pruner_state: Mapped[JSONValue] = mapped_column(JSON, default=dict)  # the pruner's per-trial notes (rungs)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetVersion(Base):
    """One immutable version of an uploaded dataset: its content address, facts, and the trainer's file as bytes."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("name", "version"), UniqueConstraint("name", "sha256"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per name
    sha256: Mapped[str] = mapped_column(String(64))  # the content address (service/ingest/ingest.py)
    data_sha256: Mapped[str] = mapped_column(String(64))  # of `data`: what a worker checks its cached copy against
    stored_bytes: Mapped[int] = mapped_column(BigInteger)  # len(data), counted against the owner's quota
    facts: Mapped[JSONValue] = mapped_column(JSON)  # classes, counts per class and split, size, channels, mean, std
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    owner_token_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("api_tokens.id", ondelete="SET NULL"))
    owner_name: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # safetensors (service/training/uploaded.py)


# The model registry's tables live in their own module; importing it here registers them on Base.metadata.
from service.storage.registry_tables import AliasMove, ModelAlias, ModelVersion, RegisteredModel  # noqa: E402

__all__ = ["AliasMove", "ModelAlias", "ModelVersion", "RegisteredModel"]
