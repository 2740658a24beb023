"""What the commands print: JSON with `--json`, else rich tables (plain text when output is not a terminal)."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Column, Table

from service.api.wire.history import HistoryRead
from service.api.wire.jobs import JobPage, JobRead
from service.api.wire.predict import PredictResponse

ImageFormat = Literal["png", "svg"]
console = Console(highlight=False)


def output(value: Any, as_json: bool, show: Callable[..., None], *extra: Any) -> None:
    """Print `value` as JSON, or through `show(value, *extra)`."""
    if as_json:
        print(value.model_dump_json() if isinstance(value, BaseModel) else json.dumps(value))
    else:
        show(value, *extra)


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
    table = Table(show_header=False, box=None)
    rows: list[tuple[str, Any]] = [
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
    for key, value in rows:
        if value is not None:
            table.add_row(key, str(value))
    console.print(table)


def history_table(history: HistoryRead, plot: Path | None) -> None:
    """`convlab jobs history`."""
    table = Table("EPOCH", "TRAIN LOSS", "TRAIN ACC", "TEST LOSS", "TEST ACC", "LR", "SECONDS", box=None)
    for e in history.epochs:
        cells = (e.train_loss, e.train_acc, e.test_loss, e.test_acc)
        table.add_row(str(e.epoch), *(f"{v:.4f}" for v in cells), f"{e.lr:g}", f"{e.seconds:.1f}")
    console.print(table)
    console.print(f"{history.total_steps_recorded} loss points recorded")
    if plot is not None:
        console.print(f"wrote {plot}", soft_wrap=True, highlight=False)  # a path a script can read back whole


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
    if plot is not None:
        console.print(f"wrote {plot}", soft_wrap=True, highlight=False)  # a path a script can read back whole
