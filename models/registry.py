"""The architecture registry: everything about an architecture in one entry per name."""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from models.densenet import densenet
from models.lenet import bn_lenet, bn_lenet_concise, lenet
from models.resnet import resnet18


@dataclass(frozen=True)
class ModelInfo:
    """An architecture: how to build it, what it is, and how the book trains it."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    default_input_size: int
    book_lr: float  # the book's learning rate (plain SGD, batch 256, 10 epochs)
    # On the CPU, oneDNN's channels_last convolutions pay off for the wide ResNet/DenseNet layers (measured about
    # 1.3-1.5x per training step at 96x96); for LeNet's 6 and 16 channels a quick measurement showed no clear gain.
    cpu_channels_last: bool = False


_REGISTRY: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("lenet", lenet, "LeNet-5 with sigmoids and max-pooling, no normalization (baseline).", 28, 1.0),
        ModelInfo("bn_lenet", bn_lenet, "LeNet with the from-scratch BatchNorm before each sigmoid.", 28, 1.0),
        ModelInfo("bn_lenet_concise", bn_lenet_concise, "LeNet with nn.BatchNorm2d/1d before each sigmoid.", 28, 1.0),
        ModelInfo(
            "resnet18",
            resnet18,
            "ResNet-18: 7x7 stem, 4 stages of 2 residual blocks, global pool.",
            96,
            0.05,
            cpu_channels_last=True,
        ),
        ModelInfo(
            "densenet",
            densenet,
            "DenseNet: growth 32, dense blocks [4,4,4,4], halving transitions.",
            96,
            0.1,
            cpu_channels_last=True,
        ),
    )
}


def list_models() -> list[ModelInfo]:
    """Every registered architecture, in registration order."""
    return list(_REGISTRY.values())


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for `name`; KeyError naming the choices if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; choose one of {sorted(_REGISTRY)}") from None


def build_model(name: str, *, in_channels: int = 1, num_classes: int = 10, input_size: int | None = None) -> nn.Module:
    """Build architecture `name` for inputs of `in_channels` x `input_size` x `input_size`."""
    info = get_model_info(name)
    size = input_size if input_size is not None else info.default_input_size
    return info.builder(in_channels=in_channels, num_classes=num_classes, input_size=size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
