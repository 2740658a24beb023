"""LeNet as in the batch-normalization chapter: plain, with from-scratch BN, and with nn.BatchNorm."""

from collections.abc import Callable

from torch import nn

from models.batchnorm import BatchNorm


def _flat_features(input_size: int) -> int:
    # conv5 -> pool2 -> conv5 -> pool2, no padding: 28 -> 24 -> 12 -> 8 -> 4; 16 -> 12 -> 6 -> 2 -> 1 is the least
    side = ((input_size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"LeNet needs an input of at least 16x16, got {input_size}")
    return 16 * side * side


def _lenet(
    in_channels: int,
    num_classes: int,
    input_size: int,
    norm2d: Callable[[int], nn.Module] | None,
    norm1d: Callable[[int], nn.Module] | None,
) -> nn.Sequential:
    def norm(factory: Callable[[int], nn.Module] | None, n: int) -> list[nn.Module]:
        return [factory(n)] if factory is not None else []

    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5),
        *norm(norm2d, 6),
        nn.Sigmoid(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5),
        *norm(norm2d, 16),
        nn.Sigmoid(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(_flat_features(input_size), 120),
        *norm(norm1d, 120),
        nn.Sigmoid(),
        nn.Linear(120, 84),
        *norm(norm1d, 84),
        nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )


def lenet(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> nn.Sequential:
    """The seed's LeNet without normalization: the baseline that BN is shown to speed up."""
    return _lenet(in_channels, num_classes, input_size, None, None)


def bn_lenet(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> nn.Sequential:
    """LeNet with the from-scratch BatchNorm after each conv/linear layer, before the sigmoid."""
    return _lenet(
        in_channels,
        num_classes,
        input_size,
        lambda n: BatchNorm(n, num_dims=4),
        lambda n: BatchNorm(n, num_dims=2),
    )


def bn_lenet_concise(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> nn.Sequential:
    """The same network with PyTorch's nn.BatchNorm2d / nn.BatchNorm1d."""
    return _lenet(in_channels, num_classes, input_size, nn.BatchNorm2d, nn.BatchNorm1d)
