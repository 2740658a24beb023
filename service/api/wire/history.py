"""Wire types of a job's history and its checkpoints."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.records import EpochRecord, StepRecord


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
    best: bool = Field(
        False,
        description=(
            "The checkpoint predictions use by default (best test accuracy, or the early-stopping metric's best)."
        ),
    )
