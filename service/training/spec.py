"""The validated training-job specification shared by the trainer, the worker and the HTTP API.

`JobSpec` is what a client sends (optional fields may be left out); `resolve_defaults` fills in the book's
recipe for the architecture, giving the complete spec that is stored with the job and drives training.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models import get_model_info, list_models

DatasetName = Literal["fashion_mnist", "mnist", "cifar10", "synthetic"]
OptimizerName = Literal["sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw"]
SchedulerName = Literal["constant", "step", "exponential", "cosine"]

# The book's recipes (d2l, plain SGD, batch 256, 10 epochs); each architecture's rate is in its registry entry.
BOOK_EPOCHS = 10
BOOK_BATCH_SIZE = 256


class OptimizerSpec(BaseModel):
    """An optimizer and its hyperparameters; `implementation: scratch` uses the book's hand-written rules."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)  # JSON 1e999 is inf: refuse it

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


class SchedulerSpec(BaseModel):
    """A learning-rate schedule over epochs, with optional linear warm-up."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    name: SchedulerName = "constant"
    step_size: int = Field(1, ge=1, description="step: epochs between decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="step/exponential: decay factor.")
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warm-up from lr/10 over this many epochs.")


class JobSpec(BaseModel):
    """What to train: architecture, data, optimization recipe and seed."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    architecture: str = Field(
        ...,
        description="One of GET /architectures.",
        examples=["bn_lenet"],
        json_schema_extra={"enum": [m.name for m in list_models()]},  # the validator below enforces the same set
    )
    dataset: DatasetName = "fashion_mnist"
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(
        None, ge=2, description="Examples per step; at least 2, since batch normalization needs batch statistics."
    )
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
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

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        names = [m.name for m in list_models()]
        if name not in names:
            raise ValueError(f"unknown architecture {name!r}; choose one of {names}")
        return name


def resolve_defaults(spec: JobSpec) -> JobSpec:
    """Fill every optional field left out with the book's recipe for the architecture."""
    info = get_model_info(spec.architecture)
    batch_size = spec.batch_size or BOOK_BATCH_SIZE
    optimizer = spec.optimizer.model_copy(update={"lr": spec.optimizer.lr or info.book_lr})
    return spec.model_copy(
        update={
            "epochs": spec.epochs or BOOK_EPOCHS,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "resize": spec.resize or info.default_input_size,
            "log_every": spec.log_every or batch_size,
        }
    )
