"""Layer-by-layer output shapes, as the seed prints them, returned as data."""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerSummary:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    num_params: int


def summarize(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerSummary]:
    """Feed zeros of `input_shape` through the model's top-level children and record each output."""
    rows: list[LayerSummary] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(input_shape)
            for name, layer in model.named_children():
                x = layer(x)
                params = sum(p.numel() for p in layer.parameters() if p.requires_grad)
                rows.append(LayerSummary(name, type(layer).__name__, tuple(x.shape), params))
    finally:
        model.train(was_training)
    return rows
