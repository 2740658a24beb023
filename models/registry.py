"""The architecture registry: the builder of each architecture in the catalogue (models/catalog.py)."""

from collections.abc import Callable

from torch import nn

from models.catalog import architecture_names, get_model_info
from models.densenet import densenet
from models.lenet import bn_lenet, bn_lenet_concise, lenet
from models.resnet import resnet18

# Each catalogue entry's builder (models/catalog.py holds the facts, which import no torch).
_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "lenet": lenet,
    "bn_lenet": bn_lenet,
    "bn_lenet_concise": bn_lenet_concise,
    "resnet18": resnet18,
    "densenet": densenet,
}
assert list(_BUILDERS) == architecture_names(), "every catalogue entry needs a builder"


def build_model(name: str, *, in_channels: int = 1, num_classes: int = 10, input_size: int | None = None) -> nn.Module:
    """Build architecture `name` for inputs of `in_channels` x `input_size` x `input_size`."""
    info = get_model_info(name)
    size = input_size if input_size is not None else info.default_input_size
    return _BUILDERS[info.name](in_channels=in_channels, num_classes=num_classes, input_size=size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
