"""The architecture registry: a name -> builder table with a description and default input size."""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from models.densenet import densenet
from models.lenet import bn_lenet, bn_lenet_concise, lenet
from models.resnet import resnet18


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    default_input_size: int


_REGISTRY: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("lenet", lenet, "LeNet-5 with sigmoids and max-pooling, no normalization (baseline).", 28),
        ModelInfo("bn_lenet", bn_lenet, "LeNet with the from-scratch BatchNorm before each sigmoid.", 28),
        ModelInfo("bn_lenet_concise", bn_lenet_concise, "LeNet with nn.BatchNorm2d/1d before each sigmoid.", 28),
        ModelInfo("resnet18", resnet18, "ResNet-18: 7x7 stem, 4 stages of 2 residual blocks, global pool.", 96),
        ModelInfo("densenet", densenet, "DenseNet: growth 32, dense blocks [4,4,4,4], halving transitions.", 96),
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
