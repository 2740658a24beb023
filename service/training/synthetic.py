"""A synthetic image dataset: class-dependent patterns plus noise, generated from a fixed seed, no files."""

import torch
from torch.nn import functional as F

SYNTHETIC_SEED = 20240601
SYNTHETIC_CLASSES = tuple(f"pattern {k}" for k in range(10))
SYNTHETIC_TRAIN_SIZE = 4096
SYNTHETIC_TEST_SIZE = 1024
_SIDE = 28


def _templates(generator: torch.Generator) -> torch.Tensor:
    """One smooth random pattern per class: a 7x7 grid upsampled to 28x28, [10, 1, 28, 28] in about [-1, 1]."""
    coarse = torch.randn(len(SYNTHETIC_CLASSES), 1, 7, 7, generator=generator)
    smooth = F.interpolate(coarse, size=(_SIDE, _SIDE), mode="bilinear", align_corners=False)
    return smooth / smooth.abs().amax(dim=(1, 2, 3), keepdim=True)


def make_synthetic(*, train: bool, seed: int = SYNTHETIC_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate a split (uint8 images [N, 1, 28, 28], int64 labels): class patterns, scaled, shifted, noisy."""
    generator = torch.Generator().manual_seed(seed)
    templates = _templates(generator)  # the same for both splits
    n = SYNTHETIC_TRAIN_SIZE if train else SYNTHETIC_TEST_SIZE
    generator.manual_seed(seed + (1 if train else 2))
    labels = torch.randint(0, len(SYNTHETIC_CLASSES), (n,), generator=generator)
    scale = 0.25 + 0.15 * torch.rand(n, 1, 1, 1, generator=generator)
    x = 0.5 + scale * templates[labels] + 0.12 * torch.randn(n, 1, _SIDE, _SIDE, generator=generator)
    shifts = torch.randint(-2, 3, (n, 2), generator=generator)
    x = torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(1, 2)) for img, (dy, dx) in zip(x, shifts, strict=True)])
    images = (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)  # [N, 1, 28, 28]
    return images, labels.to(torch.int64)
