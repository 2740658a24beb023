"""An uploaded dataset in the trainer's form: one safetensors file of uint8 images and labels per split.

Written here (by ingestion), read by `datasets.load_dataset`. The file holds tensors `train.images`
[N, C, S, S] uint8, `train.labels` [N] int64, `test.images`, `test.labels`,
and under metadata key `convlab` the JSON facts: format, class names, per-channel mean/std (of the training
split, in [0, 1]). No pickle. The name and version are not inside: the same content is the same file.
"""

import json

import torch
from safetensors.torch import save as st_save

from service.training.datasets import UPLOADED_FORMAT, UPLOADED_META_KEY, ImageData

STATS_CHUNK_BYTES = 2 * 2**20


def encode_uploaded(
    train: ImageData, test: ImageData, *, classes: tuple[str, ...], mean: tuple[float, ...], std: tuple[float, ...]
) -> bytes:
    """The stored form of an ingested dataset."""
    tensors = {
        "train.images": train.images.contiguous(),
        "train.labels": train.labels.contiguous(),
        "test.images": test.images.contiguous(),
        "test.labels": test.labels.contiguous(),
    }
    meta = {"format": UPLOADED_FORMAT, "classes": list(classes), "mean": list(mean), "std": list(std)}
    return st_save(tensors, metadata={UPLOADED_META_KEY: json.dumps(meta)})


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of uint8 images [N, C, H, W], computed in float64 chunks of about
    STATS_CHUNK_BYTES of pixels (16 bytes each in float64, twice): memory stays bounded whatever the size."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    per_image = max(images[0].numel(), 1) if len(images) else 1
    for chunk in torch.split(images, max(STATS_CHUNK_BYTES // per_image, 1)):
        x = chunk.to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = max(images.shape[0] * images.shape[2] * images.shape[3], 1)
    mean = total / count
    std = (squares / count - mean.square()).clamp_(min=0).sqrt()
    return tuple(round(float(m), 6) for m in mean), tuple(round(max(float(s), 1e-6), 6) for s in std)
