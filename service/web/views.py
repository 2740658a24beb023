"""What the pages show, computed from jobs and their histories (no HTTP here): rows, spec tables, comparisons."""

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from models.catalog import list_models
from service.errors import NotFound
from service.jobspec.spec import BOOK_BATCH_SIZE, BOOK_EPOCHS
from service.jobspec.status import JobStatus
from service.records import EpochRecord, History
from service.storage.orm import Job
from service.training.datasets import load_dataset


@dataclass(frozen=True)
class JobRow:
    id: int
    status: JobStatus
    architecture: str
    dataset: str
    epoch: int
    total_epochs: int | None
    progress: float  # 0..1
    eta_seconds: float | None
    created_at: str
    owner: str | None


def job_row(job: Job) -> JobRow:
    """One line of the jobs table."""
    total = job.total_steps or 0
    done = 1.0 if job.status is JobStatus.succeeded else (job.step / total if total else 0.0)
    return JobRow(
        id=job.id,
        status=job.status,
        architecture=str(job.spec.get("architecture", "?")),
        dataset=str(job.spec.get("dataset", "?")),
        epoch=job.epoch,
        total_epochs=job.total_epochs,
        progress=min(max(done, 0.0), 1.0),
        eta_seconds=job.eta_seconds,
        created_at=job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        owner=job.owner_name,
    )


@dataclass(frozen=True)
class Outcome:
    """A run's final and best metrics (None while it has no finished epoch)."""

    final: EpochRecord | None
    best_test_acc: float | None
    best_epoch: int | None
    lowest_loss: float | None


def outcome(history: History) -> Outcome:
    """The last epoch, the epoch with the best test accuracy and the lowest step loss of a history."""
    best = max(history.epochs, key=lambda e: e.test_acc, default=None)
    return Outcome(
        final=history.epochs[-1] if history.epochs else None,
        best_test_acc=best.test_acc if best else None,
        best_epoch=best.epoch if best else None,
        lowest_loss=min((p.loss for p in history.steps), default=None),
    )


def book_presets() -> dict[str, dict[str, Any]]:
    """Each architecture's recipe from the book, for the new-job form to fill in."""
    return {
        m.name: {
            "optimizer.name": "sgd",
            "optimizer.lr": m.book_lr,
            "epochs": BOOK_EPOCHS,
            "batch_size": BOOK_BATCH_SIZE,
            "resize": m.default_input_size,
            "description": m.description,
        }
        for m in list_models()
    }


def sample_png(dataset: str, data_dir: Path, index: int) -> bytes:
    """Test example `index` of `dataset` as a PNG (what the predict box can send); NotFound past the end."""
    test = load_dataset(dataset, data_dir, train_subset=1, test_subset=index + 1).test
    if index >= len(test.images):
        raise NotFound(f"{dataset} has {len(test.images)} test images; there is no index {index}")
    pixels = test.images[index].permute(1, 2, 0).squeeze(-1).numpy()  # (C, H, W) -> (H, W) or (H, W, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
