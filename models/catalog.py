"""The architecture catalogue: what each architecture is and how the book trains it, without importing torch.

The job vocabulary (`service.jobspec`) and the thin client read these facts; `models.registry` adds the builders.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """An architecture: what it is and how the book trains it (its builder is in `models.registry`)."""

    name: str
    description: str
    default_input_size: int
    book_lr: float  # the book's learning rate (plain SGD, batch 256, 10 epochs)
    # On the CPU, oneDNN's channels_last convolutions pay off for the wide ResNet/DenseNet layers (measured about
    # 1.3-1.5x per training step at 96x96); for LeNet's 6 and 16 channels a quick measurement showed no clear gain.
    cpu_channels_last: bool = False


_CATALOG: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("lenet", "LeNet-5 with sigmoids and max-pooling, no normalization (baseline).", 28, 1.0),
        ModelInfo("bn_lenet", "LeNet with the from-scratch BatchNorm before each sigmoid.", 28, 1.0),
        ModelInfo("bn_lenet_concise", "LeNet with nn.BatchNorm2d/1d before each sigmoid.", 28, 1.0),
        ModelInfo("resnet18", "ResNet-18: 7x7 stem, 4 stages of 2 residual blocks, global pool.", 96, 0.05, True),
        ModelInfo("densenet", "DenseNet: growth 32, dense blocks [4,4,4,4], halving transitions.", 96, 0.1, True),
    )
}


def list_models() -> list[ModelInfo]:
    """Every registered architecture, in registration order."""
    return list(_CATALOG.values())


def architecture_names() -> list[str]:
    """The architectures' names, in registration order."""
    return list(_CATALOG)


def get_model_info(name: str) -> ModelInfo:
    """The catalogue entry for `name`; KeyError naming the choices if there is none."""
    try:
        return _CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; choose one of {sorted(_CATALOG)}") from None
