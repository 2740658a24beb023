"""The architecture registry: the builder of each architecture in the catalogue (models/catalog.py)."""

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class CamLayer:
    """Where Grad-CAM looks: the module whose output is the last convolutional stage (an attribute path), and how
    many cells of that output's grid the unpadded convolutions before it leave uncovered at each side."""

    path: str
    margin: int = 0


# LeNet's two 5x5 convolutions without padding (then 2x2 pools) put the centre of output cell i at input pixel
# 2i + 6.5: a grid of stride 2 missing 3 cells each side, which an unpadded resize to the input would misplace by
# up to 5 pixels (measured: 0.87 of the top-5% Grad-CAM pixels inside a 12x12 square with the margin, 0.82 without).
_CAM_LAYERS: dict[str, CamLayer] = {
    "lenet": CamLayer("4", margin=3),  # the sigmoid after the second convolution
    "bn_lenet": CamLayer("6", margin=3),  # conv, BatchNorm, sigmoid: the sigmoid
    "bn_lenet_concise": CamLayer("6", margin=3),
    "resnet18": CamLayer("resnet_block4"),  # (N, 512, H/32, W/32)
    "densenet": CamLayer("relu"),  # after the last dense block's BatchNorm, before the global pool
}
assert list(_CAM_LAYERS) == architecture_names(), "every catalogue entry needs its Grad-CAM layer"


def build_model(name: str, *, in_channels: int = 1, num_classes: int = 10, input_size: int | None = None) -> nn.Module:
    """Build architecture `name` for inputs of `in_channels` x `input_size` x `input_size`."""
    info = get_model_info(name)
    size = input_size if input_size is not None else info.default_input_size
    return _BUILDERS[info.name](in_channels=in_channels, num_classes=num_classes, input_size=size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gradcam_layer(model: nn.Module, name: str) -> tuple[nn.Module, int]:
    """The module of `model` (architecture `name`) that Grad-CAM attributes to, and its grid's margin in cells."""
    cam = _CAM_LAYERS[get_model_info(name).name]
    return model.get_submodule(cam.path), cam.margin
