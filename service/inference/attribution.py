"""Attribution maps with Captum: Grad-CAM, integrated gradients and saliency, as heatmaps in [0, 1].

Every method answers one map per image at the model's input resolution, normalized by its own maximum:
- gradcam: Captum's LayerGradCam on the architecture's last convolutional stage (models/registry.py
  `gradcam_layer`), positive evidence only (ReLU), resized with LayerAttribution.interpolate after padding the
  grid by the cells unpadded convolutions leave uncovered;
- integrated_gradients: Captum's IntegratedGradients from the black image (the dataset's zero pixel, normalized),
  the positive part summed over channels: pixels whose brightness speaks for the target (the absolute value
  would also rank the input's own structure, which a randomized model keeps: docs/api.md);
- saliency: Captum's Saliency, the largest absolute gradient over channels.
"""

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from torch import nn
from torch.nn import functional as F

from models.registry import gradcam_layer

Method = Literal["gradcam", "integrated_gradients", "saliency"]
METHODS: tuple[str, ...] = get_args(Method)


def black(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The all-black image of `batch`'s shape as the model sees it: pixel 0 after the training transform."""
    m = torch.tensor(mean, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
    return ((0.0 - m) / s).expand_as(batch).contiguous()


def _gradcam(model: nn.Module, architecture: str, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    layer, margin = gradcam_layer(model, architecture)
    cam = LayerGradCam(model, layer).attribute(batch, target=targets, relu_attributions=True)  # [N, 1, h, w]
    if margin:
        cam = F.pad(cam, (margin, margin, margin, margin), mode="replicate")
    resized: torch.Tensor = LayerAttribution.interpolate(cam, tuple(batch.shape[-2:]), interpolate_mode="bilinear")
    return resized


def attribute(
    model: nn.Module,
    batch: torch.Tensor,
    targets: torch.Tensor,
    *,
    method: Method,
    architecture: str,
    baseline: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """Heatmaps [N, H, W] in [0, 1] of `model`'s evidence for class `targets[i]` in image `batch[i]`."""
    with torch.enable_grad():  # the serving threads run under inference mode elsewhere: not here
        x = batch.clone().requires_grad_(True)
        if method == "gradcam":
            maps = _gradcam(model, architecture, x, targets)
        elif method == "integrated_gradients":
            ig = IntegratedGradients(model)
            maps = ig.attribute(x, baselines=baseline, target=targets, n_steps=steps, internal_batch_size=256)
            maps = maps.clamp_min(0)
        else:
            maps = Saliency(model).attribute(x, target=targets, abs=True)
    maps = maps.detach().float().amax(dim=1) if method == "saliency" else maps.detach().float().sum(dim=1)
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (maps / peak).clamp_(0.0, 1.0)  # [N, H, W]; an image without positive evidence maps to zeros
