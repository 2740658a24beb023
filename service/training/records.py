"""What the training loop reports: records passed to callbacks and the final result.

The step and epoch records themselves are in service/records.py, shared with storage, the API and the plots.
"""

from dataclasses import dataclass, field
from typing import Any

from service.jobspec.status import FitStatus
from service.records import EpochRecord, StepRecord


@dataclass(frozen=True)
class RunInfo:
    """Facts about a run, known before its first step (sent once through `Callbacks.on_start`)."""

    architecture: str
    dataset: str
    dataset_checksum: str  # sha256 over the uint8 images and labels actually used (train, then test)
    train_size: int
    test_size: int
    class_names: tuple[str, ...]
    in_channels: int
    num_classes: int
    input_size: int
    steps_per_epoch: int
    total_steps: int
    epochs: int
    num_parameters: int
    device: str
    amp_dtype: str | None  # "bfloat16" on CUDA, None (float32) on CPU
    channels_last: bool
    compiled: bool
    torch_version: str
    torchvision_version: str
    resumed_from_step: int  # 0 for a fresh run
    init_from: dict[str, Any] | None = None  # fine-tuning: source job, epoch, checkpoint sha256, tensors loaded


@dataclass(frozen=True)
class Progress:
    """Where the loop is, sent at most a few times a second."""

    epoch: int
    step: int
    total_steps: int
    batches_done: int  # in the current epoch
    steps_per_epoch: int
    elapsed_seconds: float  # since this fit() call started

    @property
    def fraction(self) -> float:
        """Share of all steps done, in [0, 1]."""
        return self.step / self.total_steps if self.total_steps else 1.0


@dataclass(frozen=True)
class DownloadProgress:
    """A dataset file on its way in (first use): bytes so far; `verified` once its checksum matched."""

    dataset: str
    file: str
    url: str
    bytes_done: int
    total_bytes: int | None  # None when the server did not say
    verified: bool = False


@dataclass(frozen=True)
class Checkpoint:
    """A resumable snapshot: `epoch` counts completed epochs; `data` is one safetensors file."""

    epoch: int
    step: int
    data: bytes
    metrics: EpochRecord | None  # the epoch just finished; None for a checkpoint taken mid-epoch


@dataclass(frozen=True)
class FitResult:
    """How a `fit()` call ended and the metrics it reached."""

    status: FitStatus
    message: str
    epochs_completed: int
    step: int
    final_metrics: EpochRecord | None
    best_metrics: EpochRecord | None  # highest test accuracy
    history: list[EpochRecord] = field(default_factory=list)  # epochs finished in this call
    checkpoint: Checkpoint | None = None  # the last checkpoint taken in this call


class Callbacks:
    """Hooks the loop calls; every method is a no-op, so subclasses override only what they need."""

    def on_start(self, info: RunInfo) -> None:
        """Receive the run's facts before the first step."""

    def on_step(self, record: StepRecord) -> None:
        """Receive a training-loss record (every `log_every` examples)."""

    def on_progress(self, progress: Progress) -> None:
        """Receive throttled progress."""

    def on_download(self, progress: DownloadProgress) -> None:
        """Receive throttled progress of a dataset's download (only when its files were missing)."""

    def on_epoch(self, record: EpochRecord) -> None:
        """Receive a finished epoch's metrics."""

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Receive a checkpoint (after each epoch, and at a cooperative stop)."""

    def should_stop(self) -> bool:
        """Return True to stop at the next batch boundary, leaving a resumable checkpoint."""
        return False
