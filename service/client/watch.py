"""`convlab jobs watch`: follow a job's events, as a live bar per epoch on a terminal, else as plain lines."""

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from service.client.client import Client, Event
from service.client.http import ClientError
from service.jobspec.status import JobStatus

PLAIN_PROGRESS_SECONDS = 2.0  # plain output: at most one progress line this often


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA ?"
    minutes, secs = divmod(int(seconds), 60)
    return f"ETA {minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _metrics(data: dict[str, Any]) -> str:
    return (
        f"loss {data['train_loss']:.4f}, train acc {data['train_acc']:.3f}, test acc {data['test_acc']:.3f}, "
        f"{data['seconds']:.1f} s"
    )


def _position(data: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """(epoch running, epochs, its steps done, steps per epoch) from a progress event; None before totals."""
    total_steps, total_epochs = data.get("total_steps"), data.get("total_epochs")
    if not total_steps or not total_epochs:
        return None
    per_epoch = max(1, total_steps // total_epochs)
    epoch = min(data["step"] // per_epoch + 1, total_epochs)
    return epoch, total_epochs, data["step"] - (epoch - 1) * per_epoch, per_epoch


def _size(data: dict[str, Any]) -> str:
    total = f"/{decimal(data['total_bytes'])}" if data.get("total_bytes") else ""
    return f"{decimal(data['bytes_done'])}{total}"


class PlainDisplay:
    """One line per event (progress throttled), for logs and pipes."""

    def __init__(self) -> None:
        self.last_progress = 0.0

    def show(self, event: Event) -> None:
        data = event.data
        if event.kind == "status":
            reason = f" ({data['reason']})" if data.get("reason") else ""
            self.line(f"job {data['job_id']}: {data['status']}{reason}")
        elif event.kind == "download":
            state = "verified" if data.get("verified") else "downloading"
            self.line(f"dataset {data['dataset']}: {state} {data['file']} {_size(data)}")
        elif event.kind == "epoch":
            self.line(f"epoch {data['epoch']}: {_metrics(data)}")
        elif event.kind == "progress" and time.monotonic() - self.last_progress >= PLAIN_PROGRESS_SECONDS:
            position = _position(data)
            if position is not None:
                self.last_progress = time.monotonic()
                epoch, epochs, step, per_epoch = position
                self.line(f"epoch {epoch}/{epochs}: step {step}/{per_epoch}, {_eta(data['eta_seconds'])}")

    def line(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass


class LiveDisplay(PlainDisplay):
    """A rich progress bar per epoch (loss, accuracy and the job's ETA beside it) and per downloaded file."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
        )
        self.epochs: dict[int, TaskID] = {}
        self.files: dict[str, TaskID] = {}
        self.metrics = ""
        self.progress.start()

    def show(self, event: Event) -> None:
        data = event.data
        position = _position(data) if event.kind == "progress" else None
        if position is not None:
            self._advance(position, data["eta_seconds"])
        elif event.kind == "epoch":
            self.metrics = _metrics(data)
            task = self.epochs.get(data["epoch"])
            if task is not None:
                total = self.progress.tasks[task].total
                self.progress.update(task, completed=total, note=self.metrics)
        elif event.kind == "download":
            self._download(data)
        elif event.kind != "progress":
            super().show(event)

    def line(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def _advance(self, position: tuple[int, int, int, int], eta: float | None) -> None:
        epoch, _, step, per_epoch = position
        for done in range(1, epoch):  # epochs finished between two events
            self._epoch_task(done, per_epoch)
            self.progress.update(self.epochs[done], completed=per_epoch)
        task = self._epoch_task(epoch, per_epoch)
        self.progress.update(task, completed=step, note=f"{self.metrics}  {_eta(eta)}".strip())

    def _epoch_task(self, epoch: int, per_epoch: int) -> TaskID:
        if epoch not in self.epochs:
            self.epochs[epoch] = self.progress.add_task(f"epoch {epoch}", total=per_epoch, note="")
        return self.epochs[epoch]

    def _download(self, data: dict[str, Any]) -> None:
        name = data["file"]
        if name not in self.files:
            self.files[name] = self.progress.add_task(f"download {name}", total=data.get("total_bytes"), note="")
        note = "verified" if data.get("verified") else _size(data)
        self.progress.update(self.files[name], completed=data["bytes_done"], note=note)

    def close(self) -> None:
        self.progress.stop()


def watch(client: Client, job_id: int, *, as_json: bool = False) -> int:
    """Follow job `job_id` until it finishes: 0 if it succeeded, 1 otherwise (its error on standard error)."""
    console = Console(highlight=False)
    display = None if as_json else LiveDisplay(console) if console.is_terminal else PlainDisplay()
    try:
        for event in client.events(job_id):
            if display is None:
                print(json.dumps({"id": event.id, "event": event.kind, "data": event.data}), flush=True)
            else:
                display.show(event)
    finally:
        if display is not None:
            display.close()
    try:
        job = client.get(job_id)
    except ClientError as exc:
        if exc.status != 404:
            raise
        print(f"convlab jobs: job {job_id} was deleted", file=sys.stderr)
        return 1
    if job.status is JobStatus.succeeded:
        return 0
    print(f"convlab jobs: job {job_id} {job.status.value}: {job.error or 'no error recorded'}", file=sys.stderr)
    return 1
