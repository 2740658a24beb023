"""The training loop: `fit()` trains and evaluates per epoch, reporting through callbacks, and resumes exactly.

Data stays a uint8 tensor on the device; each batch is gathered by index and transformed in one tensor op.
Shuffling uses a generator seeded from (seed, epoch), and the learning rate is a function of the global step,
so a checkpoint (weights, optimizer, RNG, counters, partial-epoch sums) is all a resumed run needs.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from service.jobspec.spec import JobSpec
from service.jobspec.status import FitStatus
from service.records import EpochRecord, StepRecord
from service.training.checkpoints import CheckpointContents, encode_checkpoint, read_checkpoint
from service.training.datasets import ImageData, load_dataset, preprocess
from service.training.group import Group, GroupCallbacks
from service.training.records import Callbacks, Checkpoint, FitResult, Progress
from service.training.run import Run, build_run, checkpoint_meta, restore_run, run_info
from service.training.runtime import make_runtime, resolve_device
from service.training.schedules import lr_at
from service.training.stopping import stop_reason, watch

PROGRESS_SECONDS = 0.5  # at most this often through on_progress
# A cross-entropy this large means logits thousands apart: the weights have blown up even if still finite
# (BatchNorm and saturated sigmoids keep the LeNets finite at absurd learning rates).
DIVERGED_LOSS = 1e4


@dataclass(frozen=True)
class Halt:
    """Why training ended or paused: how `fit()` ends, in words."""

    status: FitStatus
    message: str


def fit(
    spec: JobSpec,
    *,
    data_dir: Path,
    callbacks: Callbacks | None = None,
    resume_from: bytes | None = None,
    device: str = "auto",
    allow_download: bool = False,
    group: Group | None = None,
    dataset_mirror: str | None = None,
    dataset_file: Path | None = None,
    init_weights: bytes | None = None,
) -> FitResult:
    """Train the resolved `spec` to the end, a cooperative stop, or divergence.

    With `group`, this process is one rank of a data-parallel run (see training/group.py).
    With `allow_download`, missing dataset files are fetched first (from `dataset_mirror` when given), with
    progress through `callbacks.on_download`. An uploaded dataset is read from `dataset_file` (the worker's
    checked local copy). A fine-tuned spec starts from `init_weights` (its `init_from` checkpoint's bytes).
    """
    callbacks = callbacks or Callbacks()
    contents: CheckpointContents | None = read_checkpoint(resume_from) if resume_from is not None else None
    splits = load_dataset(
        spec.dataset,
        Path(data_dir),
        allow_download=allow_download,
        mirror=dataset_mirror,
        on_download=callbacks.on_download,
        train_subset=spec.train_subset,
        test_subset=spec.test_subset,
        uploaded=dataset_file,
    )
    runtime = make_runtime(resolve_device(device), compile=spec.compile, architecture=spec.architecture)
    if group is not None:
        callbacks = GroupCallbacks(callbacks, group, runtime.device)
    run = build_run(spec, splits, runtime, callbacks, group=group, init_weights=init_weights)
    if contents is not None:
        restore_run(run, contents)
    run.callbacks.on_start(run_info(run))
    return _train(run)


def _train(run: Run) -> FitResult:
    history: list[EpochRecord] = []
    last: Checkpoint | None = None
    while run.state.epoch < run.plan.epochs:
        halt = train_epoch(run)
        if halt is not None and halt.status is FitStatus.diverged:
            return _result(run, halt, history, last)
        if halt is not None:
            last = _emit_checkpoint(run, None)
            return _result(run, halt, history, last)
        record = _finish_epoch(run)
        history.append(record)
        early = _early_stop(run, record)  # before the checkpoint, which keeps the watched best
        last = _emit_checkpoint(run, record)
        if early is not None and run.state.epoch < run.plan.epochs:
            return _result(run, Halt(FitStatus.early_stopped, early), history, last)
        if run.state.epoch < run.plan.epochs and run.callbacks.should_stop():
            return _result(run, Halt(FitStatus.stopped, f"stopped after epoch {run.state.epoch}"), history, last)
    message = f"completed {run.state.epoch} epochs, {run.state.step} steps"
    return _result(run, Halt(FitStatus.completed, message), history, last)


def _early_stop(run: Run, record: EpochRecord) -> str | None:
    """Track the early-stopping metric; why the run ends here, or None."""
    rule, state = run.spec.early_stopping, run.state
    if rule is None:
        return None
    state.watch_best, state.watch_epoch = watch(rule, record, state.watch_best, state.watch_epoch)
    return stop_reason(rule, state.epoch, state.watch_best, state.watch_epoch)


def _epoch_order(seed: int, epoch: int, n: int, device: torch.device) -> torch.Tensor:
    """The shuffled example indices of `epoch`, from a generator seeded by (seed, epoch) alone."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=generator).to(device)


def train_epoch(run: Run) -> Halt | None:
    """Train the rest of the current epoch; return None when it ends, else why it halted (stop/divergence)."""
    state, plan = run.state, run.plan
    epoch = state.epoch + 1
    order = _epoch_order(run.spec.seed, epoch, len(run.train), run.runtime.device)
    pending: list[tuple[int, int, int, torch.Tensor]] = []  # (step, seen before, seen after, loss) to sync
    started = time.perf_counter()
    try:
        for batch in range(state.batches_done, plan.steps_per_epoch):
            if run.callbacks.should_stop():
                return _flush(run, pending, epoch) or Halt(
                    FitStatus.stopped, f"stopped at epoch {epoch}, step {state.step}"
                )
            index = order[batch * plan.batch_size : (batch + 1) * plan.batch_size]
            state.lr = lr_at(
                run.spec.scheduler,
                base_lr=plan.lr,
                step=state.step,
                steps_per_epoch=plan.steps_per_epoch,
                epochs=plan.epochs,
            )
            seen_before = (epoch - 1) * len(run.train) + state.seen
            loss = _train_step(run, index, state.lr)
            state.step += 1
            state.batches_done += 1
            pending.append((state.step, seen_before, seen_before + int(index.shape[0]), loss))
            if len(pending) >= run.runtime.sync_every and (halt := _flush(run, pending, epoch)):
                return halt
            _maybe_progress(run, epoch)
        return _flush(run, pending, epoch)
    finally:
        state.train_seconds += time.perf_counter() - started


def _train_step(run: Run, index: torch.Tensor, lr: float) -> torch.Tensor:
    """One SGD step on the examples at `index`; returns the batch's mean loss (still on the device).

    In a group this process trains on its share of `index`; the loss and counts are those of the whole batch.
    """
    n = int(index.shape[0])
    local = run.group.take(index) if run.group is not None else index
    x = run.runtime.layout(preprocess(run.train.images[local], size=run.plan.input_size, mean=run.mean, std=run.std))
    y = run.train.labels[local]
    for param_group in run.optimizer.param_groups:
        param_group["lr"] = lr
    with run.runtime.autocast():
        logits = run.forward(x)  # [B or B / world, num_classes]
    if run.group is None:
        loss = F.cross_entropy(logits.float(), y)
    else:  # DDP averages the ranks' gradients: scaled so, the average is the gradient of the global mean
        loss = F.cross_entropy(logits.float(), y, reduction="sum") * (run.group.world / n)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    run.optimizer.step()
    loss = loss.detach()
    correct = (logits.argmax(dim=1) == y).sum()
    if run.group is not None:
        sums = run.group.all_sum(torch.stack([loss.double() * n / run.group.world, correct.double()]))
        loss, correct = (sums[0] / n).float(), sums[1].long()
    run.state.loss_sum += loss.double() * n
    run.state.correct += correct
    run.state.seen += n
    return loss


def _flush(run: Run, pending: list[tuple[int, int, int, torch.Tensor]], epoch: int) -> Halt | None:
    """Sync buffered losses to the host: report divergence, else emit the due StepRecords."""
    if not pending:
        return None
    losses = torch.stack([loss for *_, loss in pending]).tolist()
    log_every = run.plan.log_every
    for (step, before, after, _), loss in zip(pending, losses, strict=True):
        if not math.isfinite(loss) or loss > DIVERGED_LOSS:
            pending.clear()
            return Halt(FitStatus.diverged, f"diverged at epoch {epoch}, step {step} (loss={loss})")
        if after // log_every > before // log_every or step == run.plan.total_steps:
            run.callbacks.on_step(StepRecord(step=step, epoch=epoch, examples_seen=after, loss=loss))
    pending.clear()
    return None


def _maybe_progress(run: Run, epoch: int) -> None:
    now = time.perf_counter()
    if now - run.last_progress < PROGRESS_SECONDS:
        return
    run.last_progress = now
    run.callbacks.on_progress(
        Progress(
            epoch=epoch,
            step=run.state.step,
            total_steps=run.plan.total_steps,
            batches_done=run.state.batches_done,
            steps_per_epoch=run.plan.steps_per_epoch,
            elapsed_seconds=now - run.started,
        )
    )


@torch.no_grad()
def evaluate(run: Run, data: ImageData) -> tuple[float, float]:
    """Mean loss and accuracy on `data` in eval mode (BatchNorm uses its moving statistics)."""
    run.model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.runtime.device)
    correct = torch.zeros((), dtype=torch.int64, device=run.runtime.device)
    forward = run.forward if run.group is None else run.model  # evaluating needs no DDP gradient averaging
    try:
        for start in range(0, len(data), run.plan.batch_size):
            images = data.images[start : start + run.plan.batch_size]
            y = data.labels[start : start + run.plan.batch_size]
            if run.group is not None:  # each rank evaluates its share; the sums are combined below
                images, y = run.group.take(images), run.group.take(y)
                if not len(y):
                    continue
            x = run.runtime.layout(preprocess(images, size=run.plan.input_size, mean=run.mean, std=run.std))
            with run.runtime.autocast():
                logits = forward(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(dim=1) == y).sum()
    finally:
        run.model.train()
    if run.group is not None:
        sums = run.group.all_sum(torch.stack([loss_sum, correct.double()]))
        loss_sum, correct = sums[0], sums[1].long()
    n = max(len(data), 1)
    return loss_sum.item() / n, correct.item() / n


def _finish_epoch(run: Run) -> EpochRecord:
    """Evaluate, turn the epoch's sums into an EpochRecord, report it, and reset the per-epoch counters."""
    state = run.state
    started = time.perf_counter()
    test_loss, test_acc = evaluate(run, run.test)
    seen = max(state.seen, 1)
    record = EpochRecord(
        epoch=state.epoch + 1,
        train_loss=float(state.loss_sum) / seen,
        train_acc=int(state.correct) / seen,
        test_loss=test_loss,
        test_acc=test_acc,
        lr=state.lr,
        seconds=state.train_seconds + time.perf_counter() - started,
        images_per_sec=state.seen / state.train_seconds if state.train_seconds > 0 else 0.0,
    )
    state.start_epoch(record)
    run.callbacks.on_epoch(record)
    return record


def _emit_checkpoint(run: Run, record: EpochRecord | None) -> Checkpoint:
    reports = run.group is None or run.group.reports  # the others' copies are the same; only rank 0 encodes
    data = encode_checkpoint(run.model, run.optimizer, checkpoint_meta(run, record)) if reports else b""
    checkpoint = Checkpoint(epoch=run.state.epoch, step=run.state.step, data=data, metrics=record)
    run.callbacks.on_checkpoint(checkpoint)
    return checkpoint


def _result(run: Run, halt: Halt, history: list[EpochRecord], last: Checkpoint | None) -> FitResult:
    return FitResult(
        status=halt.status,
        message=halt.message,
        epochs_completed=run.state.epoch,
        step=run.state.step,
        final_metrics=run.state.last,
        best_metrics=run.state.best,
        history=history,
        checkpoint=last,
    )
