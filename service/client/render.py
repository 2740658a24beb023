"""What the commands print: JSON with `--json`, else rich tables (plain text when output is not a terminal)."""

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Column, Table

from service.api.wire.datasets import DatasetRead, DatasetSummary, DatasetVersionRead
from service.api.wire.history import HistoryRead
from service.api.wire.jobs import JobPage, JobRead
from service.api.wire.predict import PredictResponse
from service.api.wire.registry import AliasMoveRead, ModelRead, VersionRead

ImageFormat = Literal["png", "svg"]
# Piped output is read by programs: tables keep their whole cells (no terminal width to fit, no "…").
console = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
errors = Console(stderr=True, highlight=False)
PLAIN_PROGRESS_SECONDS = 2.0  # not a terminal: at most one upload line this often, and one at the end


def output(value: Any, as_json: bool, show: Callable[..., None], *extra: Any) -> None:
    """Print `value` (a model, or lists and dicts of them) as JSON, or through `show(value, *extra)`."""
    if as_json:
        print(value.model_dump_json() if isinstance(value, BaseModel) else json.dumps(to_jsonable_python(value)))
    else:
        show(value, *extra)


def _created() -> Column:
    """A CREATED column, its times kept on one line (a new one per table: a column holds its table's cells)."""
    return Column("CREATED", no_wrap=True)


def when(moment: datetime | None) -> str:
    """A time as a table cell: to the second, no zone (the server's, UTC)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def pairs(rows: list[tuple[str, Any]]) -> None:
    """A two-column table of names and values, leaving out the values that are None."""
    table = Table(Column(no_wrap=True), Column(overflow="fold"), show_header=False, box=None)  # a sha256 whole
    for key, value in rows:
        if value is not None:
            table.add_row(key, str(value))
    console.print(table)


def wrote(path: Path | None) -> None:
    """Say that a file was written, as a path a script can read back whole."""
    if path is not None:
        console.print(f"wrote {path}", soft_wrap=True, highlight=False)


def submitted(job: JobRead, as_json: bool) -> None:
    """The line (or JSON) that says a job was queued, before watching it."""
    if as_json:
        print(job.model_dump_json(), flush=True)
    else:
        console.print(f"queued job {job.id}: {_what(job)}")


def _what(job: JobRead) -> str:
    spec = job.spec
    return f"{spec.get('architecture')} on {spec.get('dataset')}, {spec.get('epochs')} epochs"


def _accuracy(job: JobRead) -> str:
    final = (job.result or {}).get("final") or {}
    return f"{final['test_acc']:.3f}" if "test_acc" in final else ""


def job_table(page: JobPage) -> None:
    """`convlab jobs ls`."""
    table = Table("ID", "STATUS", "ARCH", "DATASET", "EPOCH", "TEST ACC", "CREATED", box=None)
    for job in page.items:
        epochs = f"{job.epoch}/{job.total_epochs}" if job.total_epochs else str(job.epoch)
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        spec = job.spec
        row = (job.status.value, spec.get("architecture"), spec.get("dataset"), epochs, _accuracy(job), created)
        table.add_row(str(job.id), *(str(cell) for cell in row))
    console.print(table)
    console.print(f"{len(page.items)} of {page.total} jobs")


def job_detail(job: JobRead) -> None:
    """`convlab jobs show` (and what submit and cancel answer)."""
    pairs(
        [
            ("id", job.id),
            ("status", job.status.value + (" (cancel requested)" if job.cancel_requested else "")),
            ("what", _what(job)),
            ("progress", f"epoch {job.epoch}/{job.total_epochs}, step {job.step}/{job.total_steps or '?'}"),
            ("attempt", job.attempt),
            ("created", job.created_at.isoformat(timespec="seconds")),
            ("finished", job.finished_at.isoformat(timespec="seconds") if job.finished_at else None),
            ("test accuracy", _accuracy(job) or None),
            ("error", job.error),
            ("owner", job.owner),
            ("spec", json.dumps(job.spec, sort_keys=True)),
        ]
    )


def history_table(history: HistoryRead, plot: Path | None) -> None:
    """`convlab jobs history`."""
    table = Table("EPOCH", "TRAIN LOSS", "TRAIN ACC", "TEST LOSS", "TEST ACC", "LR", "SECONDS", box=None)
    for e in history.epochs:
        cells = (e.train_loss, e.train_acc, e.test_loss, e.test_acc)
        table.add_row(str(e.epoch), *(f"{v:.4f}" for v in cells), f"{e.lr:g}", f"{e.seconds:.1f}")
    console.print(table)
    console.print(f"{history.total_steps_recorded} loss points recorded")
    wrote(plot)


def predictions(result: PredictResponse, names: list[str]) -> None:
    """`convlab predict`: the top-k classes of each image."""
    table = Table("RANK", "CLASS", "PROBABILITY", box=None)
    table.columns.insert(0, Column("IMAGE", overflow="fold"))  # a path is never cut short
    for name, prediction in zip(names, result.predictions, strict=True):
        for rank, score in enumerate(prediction.top_k, start=1):
            table.add_row(name if rank == 1 else "", str(rank), score.label, f"{score.probability:.4f}")
    console.print(table)
    console.print(f"job {result.job_id}, checkpoint of epoch {result.checkpoint_epoch}")


def trajectory_table(result: Any, plot: Path | None) -> None:
    """`convlab lab trajectory`: where each optimizer ended."""
    runs = result.get("runs", [result])
    table = Table("OPTIMIZER", "STEPS", "FINAL X", "F(X)", "NOTE", box=None)
    for run in runs:
        last = run["points"][-1]
        note = run["diverged"] or run["stopped"]
        x = ", ".join(f"{v:.6g}" if v is not None else "nan" for v in last["x"])
        f = f"{last['f']:.6g}" if last["f"] is not None else "nan"
        table.add_row(run["optimizer"], str(last["step"]), f"[{x}]", f, note["reason"] if note else "")
    console.print(table)
    wrote(plot)


class PlainUpload:
    """The bytes of an upload sent, as lines on standard error for logs and pipes."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = 0.0

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if sent >= total or now - self.last >= PLAIN_PROGRESS_SECONDS:
            self.last = now
            print(f"uploading {self.label}: {sent}/{total} bytes", file=sys.stderr, flush=True)


@contextmanager
def upload_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A callback of (bytes sent, total) drawn as a bar on standard error when it is a terminal, else as lines."""
    if not errors.is_terminal:
        yield PlainUpload(label)
        return
    columns = (TextColumn("uploading {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=errors) as bar:
        task = bar.add_task(label, total=None)
        yield lambda sent, total: bar.update(task, completed=sent, total=total)


def dataset_table(datasets: list[DatasetSummary]) -> None:
    """`convlab datasets ls`."""
    table = Table("NAME", "VERSIONS", "LATEST", box=None)
    for dataset in datasets:
        table.add_row(dataset.name, ",".join(map(str, dataset.versions)), dataset.latest)
    console.print(table)
    console.print(f"{len(datasets)} datasets")


def dataset_versions(dataset: DatasetRead) -> None:
    """`convlab datasets show NAME`: one row per version."""
    table = Table("REF", "CLASSES", "TRAIN", "TEST", "SIZE", "CHANNELS", _created(), "OWNER", box=None)
    for v in dataset.versions:
        cells = (len(v.classes), v.train_images, v.test_images, v.size, v.channels, when(v.created_at), v.owner or "")
        table.add_row(v.ref, *map(str, cells))
    console.print(table)


def dataset_detail(version: DatasetVersionRead, samples: Path | None = None) -> None:
    """`convlab datasets show NAME@V` (and what push answers): its facts, then images per class and split."""
    mean = ", ".join(f"{m:.4f}" for m in version.mean)
    std = ", ".join(f"{s:.4f}" for s in version.std)
    pairs(
        [
            ("ref", version.ref),
            ("images", f"{version.train_images} train, {version.test_images} test (split: {version.split})"),
            (
                "stored as",
                f"{version.size}x{version.size}, {version.channels} channel(s), {version.stored_bytes} bytes",
            ),
            ("mean / std", f"{mean} / {std}"),
            ("sha256", version.sha256),
            ("created", version.created_at.isoformat(timespec="seconds")),
            ("owner", version.owner),
        ]
    )
    table = Table("LABEL", "CLASS", "TRAIN", "TEST", box=None)
    for label, name in enumerate(version.classes):
        counts = version.counts.get(name)
        table.add_row(str(label), name, *(map(str, (counts.train, counts.test)) if counts else ("", "")))
    console.print(table)
    wrote(samples)


def pushed(version: DatasetVersionRead, created: bool) -> None:
    """`convlab datasets push`: which version the upload is, then its facts."""
    console.print(f"stored {version.ref}" if created else f"{version.ref}: the same images were stored before")
    dataset_detail(version)


def model_table(models: list[ModelRead]) -> None:
    """`convlab models ls`."""
    table = Table("NAME", "VERSIONS", "LATEST", "ALIASES", _created(), "DESCRIPTION", box=None)
    for m in models:
        latest = str(m.latest_version) if m.latest_version is not None else ""
        table.add_row(m.name, str(m.versions), latest, _aliases(m.aliases), when(m.created_at), m.description)
    console.print(table)
    console.print(f"{len(models)} models")


def created(model: ModelRead) -> None:
    """`convlab models create`."""
    console.print(f"created model {model.name} (empty: `convlab models register {model.name} --job ID`)")


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias}={version}" for alias, version in sorted(aliases.items()))


def _test_accuracy(version: VersionRead) -> str:
    accuracy = (version.metrics or {}).get("test_acc")
    return f"{accuracy:.3f}" if isinstance(accuracy, float | int) else ""


def model_detail(shown: dict[str, Any]) -> None:
    """`convlab models show`: the model, then one row per version."""
    model: ModelRead = shown["model"]
    pairs(
        [
            ("name", model.name),
            ("description", model.description or None),
            ("versions", f"{model.versions} (latest {model.latest_version})" if model.versions else 0),
            ("aliases", _aliases(model.aliases) or None),
            ("created", model.created_at.isoformat(timespec="seconds")),
            ("by", model.created_by),
        ]
    )
    table = Table("VERSION", "JOB", "EPOCH", "ARCH", "DATASET", "TEST ACC", "ALIASES", _created(), box=None)
    for v in shown["versions"]:
        cells = (v.job_id, v.epoch, v.architecture, v.dataset, _test_accuracy(v), ", ".join(v.aliases))
        table.add_row(str(v.version), *map(str, cells), when(v.created_at))
    console.print(table)


def version_detail(version: VersionRead) -> None:
    """`convlab models register`: the new version."""
    console.print(f"registered {version.model} version {version.version}")
    pairs(
        [
            ("from", f"job {version.job_id}, epoch {version.epoch}"),
            ("what", f"{version.architecture} on {version.dataset}, {len(version.class_names)} classes"),
            ("test accuracy", _test_accuracy(version) or None),
            ("checkpoint sha256", version.checkpoint_sha256),
            ("onnx sha256", version.onnx_sha256),
        ]
    )


def alias_moved(move: AliasMoveRead) -> None:
    """`convlab models alias`: where the alias pointed and points now."""
    before = f"version {move.from_version}" if move.from_version is not None else "nothing (new alias)"
    console.print(f"{move.alias}: {before} -> version {move.to_version}")


def alias_history(moves: list[AliasMoveRead]) -> None:
    """`convlab models history`: every move of an alias, oldest first."""
    table = Table(Column("MOVED", no_wrap=True), "FROM", "TO", "BY", box=None)
    for move in moves:
        before = str(move.from_version) if move.from_version is not None else "-"
        table.add_row(when(move.moved_at), before, str(move.to_version), move.moved_by or "")
    console.print(table)
