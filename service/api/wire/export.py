"""Wire types of ONNX exports and their model cards."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ExportFormat(StrEnum):
    onnx = "onnx"


class Normalization(BaseModel):
    scale: float = Field(description="Pixels (0..255) are first multiplied by this (1/255).")
    mean: list[float] = Field(description="Per channel, subtracted after scaling.")
    std: list[float] = Field(description="Per channel, divided by after subtracting the mean.")


class CardInput(BaseModel):
    name: str = Field(examples=["images"])
    shape: list[str | int] = Field(description="`batch` is dynamic.", examples=[["batch", 1, 28, 28]])
    dtype: str
    layout: str
    size: int = Field(description="Side in pixels the model sees.")
    channels: int
    native_size: int = Field(description="Side of the dataset's own images.")
    normalization: Normalization
    transform: str


class CardOutput(BaseModel):
    name: str = Field(examples=["logits"])
    shape: list[str | int]
    dtype: str


class Verification(BaseModel):
    max_abs_diff: float = Field(description="Largest |logit difference| between onnxruntime and PyTorch.")
    tolerance: float = Field(description="Exports above this are refused.")
    inputs: str = Field(description="What the export was checked on.")


class ModelCard(BaseModel):
    """What the file is, what it expects and returns, and how it was checked (also in the file's metadata)."""

    format: str = Field(examples=["convlab-model-card/1"])
    job_id: int
    epoch: int
    step: int
    architecture: str
    dataset: str
    spec: dict[str, Any] = Field(description="The job's full training spec.")
    metrics: dict[str, Any] | None = Field(description="The checkpoint's epoch metrics; null mid-epoch.")
    input: CardInput
    output: CardOutput
    class_labels: list[str]
    weights_sha256: str = Field(description="sha256 of the weights as one safetensors file without metadata.")
    checkpoint_sha256: str = Field(description="sha256 of the checkpoint file it was exported from.")
    verification: Verification
    exporter: str
    runtime: str


class ExportRead(BaseModel):
    """A stored export: the file's facts and its model card."""

    format: ExportFormat
    sha256: str = Field(description="sha256 of the ONNX file.")
    size: int = Field(description="Bytes of the ONNX file.")
    max_abs_diff: float
    seconds: float = Field(description="How long exporting and verifying took.")
    created_at: datetime
    cached: bool = Field(description="Whether this export was stored before this request.")
    card: ModelCard
