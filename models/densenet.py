"""DenseNet as in the seed: dense blocks that concatenate, transition blocks that halve."""

from collections.abc import Sequence

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """BN -> ReLU -> 3x3 conv (the pre-activation order of DenseNet)."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    """`num_convs` conv blocks, each seeing the concatenation of the input and all earlier outputs."""

    def __init__(self, num_convs: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.ModuleList(conv_block(in_channels + i * out_channels, out_channels) for i in range(num_convs))
        self.out_channels = in_channels + num_convs * out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.net:
            x = torch.cat((x, block(x)), dim=1)  # channels grow by out_channels each time
        return x


def transition_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """BN -> ReLU -> 1x1 conv to `out_channels` -> 2x2 average pool (halves height and width)."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )


def densenet(
    in_channels: int = 1,
    num_classes: int = 10,
    growth_rate: int = 32,
    num_convs_in_dense_blocks: Sequence[int] = (4, 4, 4, 4),
    input_size: int = 96,
) -> nn.Sequential:
    """DenseNet: stem, dense blocks separated by channel-halving transitions, BN, ReLU, pool, linear.

    `input_size` is accepted for a uniform builder signature; the global pool makes any size work.
    """
    del input_size
    net = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),  # (N, 64, H/2, W/2)
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # (N, 64, H/4, W/4)
    )
    channels = 64
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        block = DenseBlock(num_convs, channels, growth_rate)
        net.add_module(f"dense_block_{i}", block)
        channels = block.out_channels
        if i != len(num_convs_in_dense_blocks) - 1:
            net.add_module(f"transition_block_{i}", transition_block(channels, channels // 2))
            channels //= 2
    net.add_module("bn", nn.BatchNorm2d(channels))
    net.add_module("relu", nn.ReLU())
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))  # (N, channels, 1, 1)
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(channels, num_classes)))
    return net
