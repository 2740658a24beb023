"""ResNet-18 as in the seed: residual blocks with an optional 1x1-conv shortcut."""

import torch
from torch import nn
from torch.nn import functional as F


class Residual(nn.Module):
    """Two 3x3 convs with BN; the shortcut is the identity or a (strided) 1x1 conv without BN."""

    def __init__(self, in_channels: int, out_channels: int, use_1x1conv: bool = False, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = self.conv3(x) if self.conv3 is not None else x
        return F.relu(y + shortcut)


def resnet_block(in_channels: int, out_channels: int, num_residuals: int, first_block: bool = False) -> nn.Sequential:
    """A stage; unless it is the first, its first block halves height and width and changes channels."""
    if first_block and in_channels != out_channels:
        raise ValueError("the first block keeps the channel count")
    blocks: list[nn.Module] = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blocks.append(Residual(in_channels, out_channels, use_1x1conv=True, stride=2))
        else:
            blocks.append(Residual(out_channels, out_channels))
    return nn.Sequential(*blocks)


def resnet18(in_channels: int = 1, num_classes: int = 10, input_size: int = 96) -> nn.Sequential:
    """ResNet-18: 7x7/2 stem, four stages of two residual blocks, global average pool, linear.

    `input_size` is accepted for a uniform builder signature; the global pool makes any size >= 32 work.
    """
    del input_size
    net = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),  # (N, 64, H/2, W/2)
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # (N, 64, H/4, W/4)
    )
    net.add_module("resnet_block1", resnet_block(64, 64, 2, first_block=True))
    net.add_module("resnet_block2", resnet_block(64, 128, 2))  # (N, 128, H/8, W/8)
    net.add_module("resnet_block3", resnet_block(128, 256, 2))  # (N, 256, H/16, W/16)
    net.add_module("resnet_block4", resnet_block(256, 512, 2))  # (N, 512, H/32, W/32)
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))  # (N, 512, 1, 1)
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes)))
    return net
