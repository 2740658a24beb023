"""One training run's parts and counters: built fresh from a spec, or restored from a checkpoint."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import torch
from torch import nn

from models.registry import build_model, count_parameters
from service.errors import CheckpointError, InvalidInput
from service.jobspec.spec import JobSpec
from service.records import EpochRecord
from service.training.checkpoints import CheckpointContents, check_weights, epoch_record_json, optimizer_state
from service.training.datasets import DatasetInfo, ImageData, Splits
from service.training.finetune import freeze_backbone, load_init
from service.training.group import Group, data_parallel, sync_batchnorm
from service.training.optimizers import build_optimizer
from service.training.records import Callbacks, RunInfo
from service.training.runtime import Runtime, prepare_model

# Read from the installed metadata: importing torchvision only for its version costs each worker ~2 s at start.
TORCHVISION_VERSION = version("torchvision")

# Spec fields that may differ between a checkpoint and the run resuming it.
_RESUME_MAY_CHANGE = {"epochs", "compile", "device", "distributed"}


@dataclass(frozen=True)
class Plan:
    """The resolved numbers a run follows."""

    epochs: int
    batch_size: int
    input_size: int
    log_every: int
    lr: float
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class TrainState:
    """Counters that move during training; everything here is saved in a checkpoint."""

    device: torch.device
    epoch: int = 0  # completed epochs
    step: int = 0  # completed steps, global
    batches_done: int = 0  # in the current epoch
    seen: int = 0  # examples trained on in the current epoch
    train_seconds: float = 0.0  # in the current epoch
    lr: float = 0.0
    last: EpochRecord | None = None
    best: EpochRecord | None = None
    watch_best: float | None = None  # early stopping: the watched metric's best value, and its epoch
    watch_epoch: int = 0
    loss_sum: torch.Tensor = field(init=False)  # float64: sum of batch loss x batch size, this epoch
    correct: torch.Tensor = field(init=False)  # int64: correct predictions this epoch

    def __post_init__(self) -> None:
        self.reset_sums(0.0, 0)

    def reset_sums(self, loss_sum: float, correct: int) -> None:
        """Set the per-epoch sums (kept on the device, so no step waits for the host)."""
        self.loss_sum = torch.tensor(loss_sum, dtype=torch.float64, device=self.device)
        self.correct = torch.tensor(correct, dtype=torch.int64, device=self.device)

    def start_epoch(self, finished: EpochRecord) -> None:
        """Record a finished epoch and clear the per-epoch counters."""
        self.epoch += 1
        self.batches_done = self.seen = 0
        self.train_seconds = 0.0
        self.reset_sums(0.0, 0)
        self.last = finished
        if self.best is None or finished.test_acc > self.best.test_acc:
            self.best = finished


@dataclass
class Run:
    """Everything one `fit()` call works with."""

    spec: JobSpec
    plan: Plan
    splits: Splits
    train: ImageData  # on the device
    test: ImageData  # on the device
    runtime: Runtime
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    callbacks: Callbacks
    mean: tuple[float, ...]
    std: tuple[float, ...]
    state: TrainState
    group: Group | None = None  # this process's rank in a data-parallel run; None: it trains alone
    init_from: dict[str, Any] | None = None  # fine-tuning: the source checkpoint and what was loaded from it
    started: float = field(default_factory=time.perf_counter)
    last_progress: float = -math.inf  # the first batch always reports progress


def _steps_per_epoch(n: int, batch_size: int) -> int:
    # A final batch of one example is dropped: BatchNorm cannot take batch statistics of one example.
    return n // batch_size + (1 if n % batch_size > 1 else 0)


def make_plan(spec: JobSpec, train_size: int) -> Plan:
    """The numbers a run follows, from the resolved spec and the training set's size."""
    steps = _steps_per_epoch(train_size, spec.batch_size)
    if steps == 0:
        raise InvalidInput(f"the training set has {train_size} examples: too few for one batch")
    return Plan(spec.epochs, spec.batch_size, spec.resize, spec.log_every, spec.optimizer.lr, steps)


def _xavier(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)


def init_model(spec: JobSpec, *, in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """Build the architecture with the global RNG seeded from the job (Xavier init like the book, by default)."""
    torch.manual_seed(spec.seed)
    try:
        model = build_model(spec.architecture, in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if spec.init == "xavier":
        model.apply(_xavier)
    return model


def _start_model(spec: JobSpec, info: DatasetInfo, plan: Plan, init_weights: bytes | None) -> tuple[nn.Module, Any]:
    """The seeded model, started from `init_weights` (fine-tuning) when given, its backbone frozen if asked."""
    model = init_model(spec, in_channels=info.in_channels, num_classes=info.num_classes, input_size=plan.input_size)
    if spec.init_from is None:
        return model, None
    transfer = load_init(model, init_weights) if init_weights is not None else None
    if spec.init_from.freeze:
        freeze_backbone(model)
    source = spec.init_from.model_dump(mode="json")
    return model, {**source, **transfer} if transfer is not None else source


def build_run(
    spec: JobSpec,
    splits: Splits,
    runtime: Runtime,
    callbacks: Callbacks,
    *,
    group: Group | None = None,
    init_weights: bytes | None = None,
) -> Run:
    """A fresh run: seeded (or fine-tuned) model on the device, optimizer, device-resident data, zeroed counters."""
    info = splits.info
    plan = make_plan(spec, len(splits.train))
    model, transfer = _start_model(spec, info, plan, init_weights)
    if group is not None:
        model = sync_batchnorm(model, runtime.device)
    model, forward = prepare_model(model, runtime)
    if group is not None:
        forward = data_parallel(model, runtime)
    mean = info.mean if spec.normalize else (0.0,) * info.in_channels
    std = info.std if spec.normalize else (1.0,) * info.in_channels
    return Run(
        spec=spec,
        plan=plan,
        splits=splits,
        train=splits.train.to(runtime.device),
        test=splits.test.to(runtime.device),
        runtime=runtime,
        model=model,
        forward=forward,
        optimizer=build_optimizer([p for p in model.parameters() if p.requires_grad], spec.optimizer),
        callbacks=callbacks,
        mean=mean,
        std=std,
        state=TrainState(runtime.device),
        group=group,
        init_from=transfer,
    )


def checkpoint_meta(run: Run, record: EpochRecord | None) -> dict[str, Any]:
    """The JSON half of a checkpoint: what the model is, how its inputs look, and where training stands."""
    info, state = run.splits.info, run.state
    return {
        "architecture": run.spec.architecture,
        "in_channels": info.in_channels,
        "num_classes": info.num_classes,
        "input_size": run.plan.input_size,
        "dataset": info.name,
        "native_size": info.native_size,
        "class_names": list(info.class_names),
        "mean": list(run.mean),
        "std": list(run.std),
        "dataset_checksum": run.splits.checksum,
        "spec": run.spec.model_dump(mode="json"),
        "epoch": state.epoch,
        "step": state.step,
        "batches_done": state.batches_done,
        "seen": state.seen,
        "loss_sum": float(state.loss_sum),
        "correct": int(state.correct),
        "train_seconds": state.train_seconds,
        "lr": state.lr,
        "metrics": epoch_record_json(record),
        "last": epoch_record_json(state.last),
        "best": epoch_record_json(state.best),
        "watch": [state.watch_best, state.watch_epoch],
        "torch_version": torch.__version__,
        "torchvision_version": TORCHVISION_VERSION,
    }


def _check_compatible(run: Run, meta: dict[str, Any]) -> None:
    saved = {k: v for k, v in meta.get("spec", {}).items() if k not in _RESUME_MAY_CHANGE}
    current = {k: v for k, v in run.spec.model_dump(mode="json").items() if k not in _RESUME_MAY_CHANGE}
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if changed:
        raise CheckpointError(f"checkpoint was made for a different job spec (differs in {changed})")
    if meta.get("dataset_checksum") != run.splits.checksum:
        raise CheckpointError("checkpoint was made on different data (dataset checksum differs)")


def restore_run(run: Run, contents: CheckpointContents) -> None:
    """Put the run exactly where the checkpoint left it: weights, optimizer, RNG and counters."""
    meta = contents.meta
    _check_compatible(run, meta)
    weights = contents.prefixed("model.")
    check_weights(run.model, weights, run.spec.architecture)
    run.model.load_state_dict(weights)
    run.optimizer.load_state_dict(optimizer_state(contents))
    torch.set_rng_state(contents.tensors["rng.cpu"])
    if "rng.cuda" in contents.tensors and run.runtime.device.type == "cuda":
        torch.cuda.set_rng_state(contents.tensors["rng.cuda"])
    state = run.state
    state.epoch, state.step, state.batches_done = int(meta["epoch"]), int(meta["step"]), int(meta["batches_done"])
    state.seen, state.train_seconds, state.lr = int(meta["seen"]), float(meta["train_seconds"]), float(meta["lr"])
    state.reset_sums(float(meta["loss_sum"]), int(meta["correct"]))
    state.last = EpochRecord(**meta["last"]) if meta.get("last") else None
    state.best = EpochRecord(**meta["best"]) if meta.get("best") else None
    state.watch_best, state.watch_epoch = meta.get("watch", [None, 0])


def run_info(run: Run) -> RunInfo:
    """The facts sent through `on_start`."""
    info = run.splits.info
    return RunInfo(
        architecture=run.spec.architecture,
        dataset=info.name,
        dataset_checksum=run.splits.checksum,
        train_size=len(run.train),
        test_size=len(run.test),
        class_names=info.class_names,
        in_channels=info.in_channels,
        num_classes=info.num_classes,
        input_size=run.plan.input_size,
        steps_per_epoch=run.plan.steps_per_epoch,
        total_steps=run.plan.total_steps,
        epochs=run.plan.epochs,
        num_parameters=count_parameters(run.model),
        device=str(run.runtime.device),
        amp_dtype=str(run.runtime.amp_dtype).removeprefix("torch.") if run.runtime.amp_dtype else None,
        channels_last=run.runtime.channels_last,
        compiled=run.runtime.compiled,
        torch_version=torch.__version__,
        torchvision_version=TORCHVISION_VERSION,
        resumed_from_step=run.state.step,
        init_from=run.init_from,
    )
