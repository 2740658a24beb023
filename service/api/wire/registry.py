"""Wire types of the model registry: models, versions, aliases and their moves, predictions by name."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.api.wire.predict import PredictResponse

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="1-64 letters, digits, '.', '_' or '-'.", examples=["fashion"])
    description: str = Field("", max_length=2000)


class VersionCreate(BaseModel):
    """Which checkpoint becomes the next version: a succeeded job's best (no epoch) or the end of an epoch."""

    model_config = ConfigDict(extra="forbid")

    job_id: int = Field(ge=1, le=2**63 - 1, examples=[1])
    epoch: int | None = Field(None, ge=0, le=2**31 - 1, description="Default: the best checkpoint.")


class AliasMoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1, description="The version the alias points at after the move.")


class VersionRead(BaseModel):
    """An immutable version: its checkpoint (job, epoch, sha256), dataset, classes, metrics and ONNX export."""

    model: str
    version: int
    job_id: int = Field(description="The job it came from (kept after the job is deleted).")
    job_exists: bool
    epoch: int
    checkpoint_sha256: str
    onnx_sha256: str
    architecture: str
    dataset: str
    class_names: list[str]
    metrics: dict[str, Any] | None
    aliases: list[str] = Field(description="The aliases pointing at this version now.")
    created_at: datetime
    created_by: str | None


class ModelRead(BaseModel):
    name: str
    description: str
    created_at: datetime
    created_by: str | None
    versions: int = Field(description="How many versions exist.")
    latest_version: int | None
    aliases: dict[str, int] = Field(description="Each alias and the version it points at.")


class AliasMoveRead(BaseModel):
    """One move of an alias: who (token name; null with auth off), when, from which version to which."""

    alias: str
    from_version: int | None = Field(description="null when the move created the alias.")
    to_version: int
    moved_by: str | None
    moved_at: datetime


class ModelPredictResponse(PredictResponse):
    """A job's predict answer, plus the model version that served it (also in the X-Model-Version header)."""

    model: str
    version: int
    alias: str | None = Field(description="The alias the version was found through; null when asked by number.")
