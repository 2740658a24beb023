"""What the pages show, computed from stored rows (no HTTP here): job rows, outcomes, datasets, registry versions."""

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from models.catalog import list_models
from service.errors import NotFound
from service.jobspec.spec import BOOK_BATCH_SIZE, BOOK_EPOCHS, UPLOADED_REF, is_uploaded
from service.jobspec.status import JobStatus
from service.records import EpochRecord, History
from service.storage.orm import DatasetVersion, Job, ModelVersion
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


@dataclass(frozen=True)
class ClassCount:
    """A class of an uploaded dataset: its label, name and images per split."""

    label: int
    name: str
    train: int
    test: int


@dataclass(frozen=True)
class DatasetView:
    """One version of an uploaded dataset as its page shows it (the facts stored at ingestion)."""

    name: str
    version: int
    ref: str
    sha256: str
    created_at: str
    owner: str | None
    classes: list[ClassCount]
    size: int
    channels: int
    mean: list[float]
    std: list[float]
    split: str
    train_images: int
    test_images: int
    stored_bytes: int


def dataset_view(row: DatasetVersion) -> DatasetView:
    """The page's view of a stored version; the owner is its token's name, else the address it came from."""
    facts = row.facts
    counts = facts["counts"]
    classes = [ClassCount(i, c, counts[c]["train"], counts[c]["test"]) for i, c in enumerate(facts["classes"])]
    return DatasetView(
        name=row.name,
        version=row.version,
        ref=f"{row.name}@{row.version}",
        sha256=row.sha256,
        created_at=row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        owner=row.owner_name or (f"address {row.client_address}" if row.client_address else None),
        classes=classes,
        size=facts["size"],
        channels=facts["channels"],
        mean=facts["mean"],
        std=facts["std"],
        split=facts["split"],
        train_images=facts["train_images"],
        test_images=facts["test_images"],
        stored_bytes=row.stored_bytes,
    )


def dataset_choices(rows: Iterable[DatasetVersion]) -> list[tuple[str, str]]:
    """The uploaded datasets a job can name, as (value, label): `name` for the latest, then each `name@N`."""
    names: dict[str, list[int]] = {}
    for row in rows:
        names.setdefault(row.name, []).append(row.version)
    choices = []
    for name, versions in names.items():
        choices.append((name, f"{name} (latest, now @{max(versions)})"))
        choices += [(f"{name}@{v}", f"{name}@{v}") for v in sorted(versions, reverse=True)]
    return choices


def dataset_page_path(ref: str) -> str | None:
    """The dashboard page of an uploaded dataset version `name@N` (None for a built-in one or a bare name)."""
    match = UPLOADED_REF.fullmatch(ref)
    if not is_uploaded(ref) or match is None or match["version"] is None:
        return None
    return f"/ui/datasets/{match['name']}/versions/{match['version']}"


@dataclass(frozen=True)
class VersionRow:
    """A registered model version: where its checkpoint came from, its epoch's metrics and its aliases now."""

    version: int
    job_id: int
    job_exists: bool
    epoch: int
    architecture: str
    dataset: str
    dataset_path: str | None
    metrics: dict[str, Any]
    aliases: list[str]
    checkpoint_sha256: str
    created_at: str
    created_by: str | None


def version_row(version: ModelVersion, aliases: dict[str, int]) -> VersionRow:
    """One line of a model's versions table; `aliases` maps each alias to the version it points at."""
    return VersionRow(
        version=version.version,
        job_id=version.source_job_id,
        job_exists=version.job_id is not None,
        epoch=version.epoch,
        architecture=version.architecture,
        dataset=version.dataset,
        dataset_path=dataset_page_path(version.dataset),
        metrics=version.metrics or {},
        aliases=sorted(name for name, number in aliases.items() if number == version.version),
        checkpoint_sha256=version.checkpoint_sha256,
        created_at=version.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        created_by=version.created_by,
    )


def alias_choices(aliases: Iterable[str]) -> list[str]:
    """The aliases the promote form suggests: staging and prod first, then the model's others."""
    return list(dict.fromkeys(["staging", "prod", *sorted(aliases)]))
