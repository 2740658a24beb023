"""The job spec in its two forms: `JobRequest` as submitted (fields may be left out) and `JobSpec` resolved.

`JobRequest.resolve()` fills in the book's recipe for the architecture once, at admission; the resolved `JobSpec`,
whose every field is set, is what is stored with the job, read back by the worker and taken by `fit()`.
Nothing here imports torch or SQLAlchemy: the architecture facts come from `models.catalog`.
"""

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from models.catalog import architecture_names, get_model_info

BUILTIN_DATASETS = ("fashion_mnist", "mnist", "cifar10", "synthetic")
# An uploaded dataset: `name` (its latest version, pinned at admission) or `name@N`.
UPLOADED_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
UPLOADED_REF = re.compile(rf"(?P<name>{UPLOADED_NAME.pattern})(?:@(?P<version>[1-9][0-9]{{0,8}}))?")
OptimizerName = Literal["sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw"]
SchedulerName = Literal["constant", "step", "exponential", "cosine"]
DeviceKind = Literal["cpu", "cuda", "auto"]

# The book's recipes (d2l, plain SGD, batch 256, 10 epochs); each architecture's rate is in its catalogue entry.
BOOK_EPOCHS = 10
BOOK_BATCH_SIZE = 256


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)  # JSON 1e999 is inf: refuse it


class OptimizerRequest(_Strict):
    """An optimizer and its hyperparameters; `implementation: scratch` uses the book's hand-written rules."""

    name: OptimizerName = "sgd"
    lr: float | None = Field(None, gt=0, description="Learning rate; default: the book's for the architecture.")
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam/AdamW first-moment decay.")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam/AdamW second-moment decay.")
    gamma: float = Field(0.9, ge=0, lt=1, description="RMSProp decay of the squared-gradient average.")
    rho: float = Field(0.9, ge=0, lt=1, description="Adadelta decay.")
    eps: float = Field(1e-6, gt=0, description="Added for numerical stability (inside the sqrt for scratch).")
    implementation: Literal["torch", "scratch"] = "torch"


class OptimizerSpec(OptimizerRequest):
    """A resolved optimizer: its learning rate is set."""

    lr: float = Field(gt=0, description="Learning rate.")


class SchedulerSpec(_Strict):
    """A learning-rate schedule over epochs, with optional linear warm-up."""

    name: SchedulerName = "constant"
    step_size: int = Field(1, ge=1, description="step: epochs between decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="step/exponential: decay factor.")
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warm-up from lr/10 over this many epochs.")


class DistributedSpec(BaseModel):
    """Data-parallel training across local processes (gloo on the CPU, NCCL on GPUs: one GPU per process)."""

    model_config = ConfigDict(extra="forbid")

    processes: int = Field(1, ge=1, description="Processes sharing each global batch; it must divide batch_size.")


class InitFrom(_Strict):
    """Start from a succeeded job's checkpoint, or a registered model's version (fine-tuning): tensors whose names
    and shapes match are loaded. A model is resolved at admission to its version's job and epoch, which are kept."""

    job: int | None = Field(
        None, ge=1, le=2**53, description="The succeeded job whose checkpoint the weights come from."
    )
    model: str | None = Field(
        None, max_length=64, description="Or a registered model: its `alias` (default prod) or `version`."
    )
    alias: str | None = Field(None, max_length=64, description="With `model`: the alias whose version to use.")
    version: int | None = Field(None, ge=1, description="With `model`: the version number to use.")
    epoch: Literal["best"] | int = Field(
        "best", description="`best` (its highest test accuracy) or the epoch whose checkpoint to use."
    )
    freeze: bool = Field(False, description="Keep the loaded backbone's weights fixed; train only the classifier head.")
    checkpoint_sha256: str | None = Field(
        None, pattern="^[0-9a-f]{64}$", description="Set at admission: the sha256 of the checkpoint chosen."
    )

    @field_validator("epoch")
    @classmethod
    def _epoch(cls, epoch: str | int) -> str | int:
        if isinstance(epoch, int) and epoch < 1:
            raise ValueError("an epoch number is at least 1")
        return epoch

    @model_validator(mode="after")
    def _one_source(self) -> "InitFrom":
        if self.model is None and (self.alias is not None or self.version is not None):
            raise ValueError("alias and version name a version of `model`; give the model too")
        if self.model is None and self.job is None:
            raise ValueError("give the source: `job` (a succeeded job) or `model` (a registered model)")
        return self


class ResolvedInitFrom(InitFrom):
    """A fine-tuning source as admitted: the job whose checkpoint is used is always named."""

    job: int = Field(ge=1, le=2**53, description="The succeeded job whose checkpoint the weights come from.")


class EarlyStopping(_Strict):
    """End the job once the metric has not improved by `min_delta` for `patience` epochs in a row."""

    metric: Literal["test_acc", "test_loss"] = "test_acc"
    patience: int = Field(3, ge=1, le=1000, description="Epochs without improvement before the job ends.")
    min_delta: float = Field(0.0, ge=0, description="The least change that counts as an improvement.")


class JobRequest(_Strict):
    """What to train: architecture, data, optimization recipe and seed; left-out fields get the book's recipe."""

    architecture: str = Field(
        ...,
        description="One of GET /architectures.",
        examples=["bn_lenet"],
        json_schema_extra={"enum": list[JsonValue](architecture_names())},  # the validator below enforces the same set
    )
    dataset: str = Field(
        "fashion_mnist",
        description="A built-in dataset (fashion_mnist, mnist, cifar10, synthetic) or an uploaded one: `name@N`, or "
        "`name` for its latest version (pinned to `name@N` when the job is queued).",
        examples=["fashion_mnist", "flowers@2"],
        json_schema_extra={"pattern": f"^{UPLOADED_REF.pattern}$"},  # the built-in names match it too
    )
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(
        None, ge=2, description="Examples per step; at least 2, since batch normalization needs batch statistics."
    )
    optimizer: OptimizerRequest = Field(default_factory=OptimizerRequest)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    resize: int | None = Field(None, ge=12, le=512, description="Input side in pixels; default per model.")
    train_subset: int | None = Field(None, ge=1, description="Train on the first N training examples.")
    test_subset: int | None = Field(None, ge=1, description="Evaluate on the first N test examples.")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    compile: bool = Field(False, description="Use torch.compile (worth it on GPUs, for long jobs).")
    log_every: int | None = Field(None, ge=1, description="Record the training loss every N examples.")
    init: Literal["xavier", "default"] = Field(
        "xavier", description="Weight init: the book's Xavier-uniform for conv/linear, or PyTorch's default."
    )
    normalize: bool = Field(
        False, description="Standardize inputs with the dataset's mean/std (the book only scales to [0, 1])."
    )
    device: DeviceKind = Field(
        "auto", description="Where to train: only a worker of that kind claims the job (auto: any worker)."
    )
    distributed: DistributedSpec | None = Field(
        None, description="Train across several processes of one worker (torch.distributed); none: one process."
    )
    init_from: InitFrom | None = Field(None, description="Fine-tune: start from a succeeded job's checkpoint.")
    early_stopping: EarlyStopping | None = Field(
        None, description="End early once a test metric stops improving (the best checkpoint serves predictions)."
    )
    keep_checkpoints: int | None = Field(
        None,
        ge=1,
        description="Checkpoints kept besides the best one (default: the server's CONVLAB_KEEP_CHECKPOINTS, set at "
        "admission; None in a spec stored before this field: the worker's setting applies).",
    )

    @property
    def processes(self) -> int:
        """How many processes train the job."""
        return self.distributed.processes if self.distributed is not None else 1

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        names = architecture_names()
        if name not in names:
            raise ValueError(f"unknown architecture {name!r}; choose one of {names}")
        return name

    @field_validator("dataset")
    @classmethod
    def _dataset_name(cls, name: str) -> str:
        if name not in BUILTIN_DATASETS and UPLOADED_REF.fullmatch(name) is None:
            raise ValueError(
                f"unknown dataset {name!r}; choose one of {list(BUILTIN_DATASETS)} or an uploaded dataset as "
                "`name` or `name@N` (lowercase letters, digits, '_', '.', '-')"
            )
        return name

    def resolve(self) -> "JobSpec":
        """The spec with every left-out field filled in from the book's recipe for the architecture."""
        info = get_model_info(self.architecture)
        batch_size = self.batch_size or BOOK_BATCH_SIZE
        fields = self.model_dump(exclude={"optimizer"})
        fields.update(
            epochs=self.epochs or BOOK_EPOCHS,
            batch_size=batch_size,
            resize=self.resize or info.default_input_size,
            log_every=self.log_every or batch_size,
        )
        optimizer = OptimizerSpec(**{**self.optimizer.model_dump(), "lr": self.optimizer.lr or info.book_lr})
        return JobSpec.model_validate({**fields, "optimizer": optimizer})


def is_uploaded(dataset: str) -> bool:
    """Whether `dataset` names an uploaded dataset rather than a built-in one."""
    return dataset not in BUILTIN_DATASETS


class JobSpec(JobRequest):
    """A resolved spec: every field set. Made once by `JobRequest.resolve()`, stored with the job, read back as is.

    Stored specs have been resolved since the first migration; the fields added since (`init`, `normalize`,
    `device`, `distributed`, ...) have defaults, so every stored row reads as a `JobSpec` without a migration.
    """

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2, description="Examples per step.")
    optimizer: OptimizerSpec
    resize: int = Field(ge=12, le=512, description="Input side in pixels.")
    log_every: int = Field(ge=1, description="Record the training loss every N examples.")
    init_from: ResolvedInitFrom | None = Field(None, description="Fine-tune: the checkpoint the weights come from.")

    def resolve(self) -> "JobSpec":
        """Already resolved."""
        return self
