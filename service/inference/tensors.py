"""Input tensors as the Open Inference Protocol sends them, made into the batch a model sees; and the
classification extension's "score:index:label" strings.

Three forms (all [N, ...] with N images): FP32 [N, C, S, S], already normalized (the model's own input, as the
ONNX model card describes it); UINT8 [N, H, W] or [N, C, H, W], raw pixels that go through the dataset's
native size and the training transform like a predict upload; BYTES [N], encoded PNG/JPEG files.
"""

from collections.abc import Callable

import numpy as np
import torch

from service.errors import InvalidInput
from service.inference.images import ImageLimits, check_count, decode_image, native_batch, pixels_to_tensor
from service.training.checkpoints import LoadedCheckpoint

# The batch for a loaded checkpoint: the model's float input, or native uint8 images that the batcher transforms.
BatchOf = Callable[[LoadedCheckpoint], torch.Tensor]


def fp32_batch(array: np.ndarray, *, name: str, limits: ImageLimits) -> BatchOf:
    """A normalized float batch, checked against the model's channels and side once it is loaded."""
    check_count(array.shape[0] if array.ndim else 0, limits)
    if not np.isfinite(array).all():
        raise InvalidInput(f"{name}: FP32 values must be finite")

    def batch_of(loaded: LoadedCheckpoint) -> torch.Tensor:
        wanted = (loaded.in_channels, loaded.input_size, loaded.input_size)
        if array.ndim != 4 or tuple(array.shape[1:]) != wanted:
            raise InvalidInput(f"{name}: FP32 input must have shape [N, {', '.join(map(str, wanted))}]")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    return batch_of


def uint8_batch(array: np.ndarray, *, name: str, limits: ImageLimits) -> BatchOf:
    """Raw pixels [N, H, W] or [N, C, H, W] (0..255), prepared like a predict request's pixel arrays."""
    if array.ndim not in (3, 4):
        raise InvalidInput(f"{name}: UINT8 input must have shape [N, H, W] or [N, C, H, W]")
    check_count(array.shape[0], limits)

    def batch_of(loaded: LoadedCheckpoint) -> torch.Tensor:
        images = [
            pixels_to_tensor(item, in_channels=loaded.in_channels, limits=limits, name=f"{name}[{i}]")
            for i, item in enumerate(array)
        ]
        return native_batch(loaded, images)

    return batch_of


def bytes_batch(files: list[bytes], *, name: str, limits: ImageLimits) -> BatchOf:
    """Encoded PNG/JPEG files, decoded like a predict upload."""
    check_count(len(files), limits)

    def batch_of(loaded: LoadedCheckpoint) -> torch.Tensor:
        images = [
            decode_image(data, in_channels=loaded.in_channels, limits=limits, name=f"{name}[{i}]")
            for i, data in enumerate(files)
        ]
        return native_batch(loaded, images)

    return batch_of


def classification(values: torch.Tensor, class_names: tuple[str, ...], k: int) -> list[list[str]]:
    """The `k` highest values of each row as "score:index:label" strings, best first (k capped at the classes)."""
    scores, indices = values.topk(min(k, values.shape[1]), dim=1)
    return [
        [f"{score:f}:{index}:{class_names[index]}" for score, index in zip(row_s, row_i, strict=True)]
        for row_s, row_i in zip(scores.tolist(), indices.tolist(), strict=True)
    ]
