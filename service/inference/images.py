"""Images for prediction: decoding, pixel arrays, and the batch a model sees.

Every input form (upload, base64, pixel array) becomes a uint8 tensor [C, H, W] shaped like a dataset image
(the dataset's channels and native side), then goes through `preprocess`, the exact training transform. The
predict paths hand the batcher native uint8 batches, and it transforms each forward pass's batch once
(service/inference/batching.py): per request, the transform's few tensor operations cost more than they compute.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.nn import functional as F

from service.errors import InvalidInput, PayloadTooLarge
from service.training.checkpoints import LoadedCheckpoint
from service.training.datasets import preprocess

IMAGE_FORMATS = {"PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"}


@dataclass(frozen=True)
class ImageLimits:
    """Configurable bounds on one predict request."""

    max_images: int
    max_pixels: int


def check_count(n: int, limits: ImageLimits) -> None:
    """InvalidInput unless 1 <= n <= max_images."""
    if n < 1:
        raise InvalidInput("no images given: send a file, a non-empty `images` list or a non-empty `pixels` list")
    if n > limits.max_images:
        raise PayloadTooLarge(f"{n} images in one request; the limit is {limits.max_images} (predict_max_images)")


def _to_mode(image: Image.Image, in_channels: int) -> Image.Image:
    """Gray for 1 channel, RGB for 3; transparency is composited over black, the datasets' background."""
    target = "L" if in_channels == 1 else "RGB"
    if image.mode == target:
        return image  # already so: no converted copy
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return image.convert(target)


def decode_image(data: bytes, *, in_channels: int, limits: ImageLimits, name: str = "image") -> torch.Tensor:
    """Decode PNG/JPEG (or BMP, GIF, WebP, TIFF) bytes into uint8 [C, H, W]; 4xx naming `name` if it is bad."""
    if not data:
        raise InvalidInput(f"{name}: empty file")
    try:
        with Image.open(BytesIO(data)) as image:
            if image.format not in IMAGE_FORMATS:
                raise InvalidInput(f"{name}: unsupported image format {image.format}; send PNG or JPEG")
            width, height = image.size
            if width * height > limits.max_pixels:
                raise PayloadTooLarge(
                    f"{name}: {width}x{height} pixels exceeds the limit of {limits.max_pixels} (predict_max_pixels)"
                )
            image.load()
            array = np.array(_to_mode(image, in_channels), dtype=np.uint8)  # a writable copy, the only one
    except UnidentifiedImageError:
        raise InvalidInput(f"{name}: not an image (expected PNG or JPEG bytes)") from None
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"{name}: too many pixels (decompression bomb protection)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{name}: corrupt or truncated image ({exc})") from None
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()  # HWC -> CHW


def pixels_to_tensor(item: Any, *, in_channels: int, limits: ImageLimits, name: str = "pixels") -> torch.Tensor:
    """A nested list [H][W] (gray) or [C][H][W] of numbers in 0..255 as uint8 [C, H, W]; 422 if malformed."""
    try:
        array = np.asarray(item, dtype=np.float64)
    except (ValueError, TypeError):
        raise InvalidInput(f"{name}: ragged or non-numeric array; every row must have the same length") from None
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, in_channels) or 0 in array.shape:
        raise InvalidInput(f"{name}: expected a non-empty [H][W] or [{in_channels}][H][W] array, got {array.shape}")
    if array.shape[1] * array.shape[2] > limits.max_pixels:
        raise PayloadTooLarge(f"{name}: more pixels than the limit of {limits.max_pixels} (predict_max_pixels)")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise InvalidInput(f"{name}: values must be numbers between 0 and 255")
    tensor = torch.from_numpy(np.rint(array).astype(np.uint8))
    return tensor.expand(in_channels, -1, -1).contiguous()


def to_native(image: torch.Tensor, native_size: int) -> torch.Tensor:
    """Pad a uint8 [C, H, W] image to a centred square (black) and resize it to the dataset's side."""
    _, height, width = image.shape
    if (height, width) == (native_size, native_size):
        return image
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    image = F.pad(image, (left, side - width - left, top, side - height - top))
    x = image.unsqueeze(0).to(torch.float32)
    x = F.interpolate(
        x, size=(native_size, native_size), mode="bilinear", align_corners=False, antialias=side > native_size
    )
    return x.round_().clamp_(0, 255).to(torch.uint8)[0]


def native_batch(loaded: LoadedCheckpoint, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """The images as one uint8 batch [N, C, S, S] at the dataset's native side, not yet transformed."""
    if len(images) == 1:  # the usual request: a view, no copy
        return to_native(images[0], loaded.native_size).unsqueeze(0)
    return torch.stack([to_native(im, loaded.native_size) for im in images])


def model_input(loaded: LoadedCheckpoint, batch: torch.Tensor) -> torch.Tensor:
    """The float batch the model sees: a uint8 native batch through the training transform; a float batch, the
    model's own input already (the Open Inference Protocol's FP32 form), as it is."""
    if batch.dtype != torch.uint8:
        return batch
    return preprocess(batch, size=loaded.input_size, mean=loaded.mean, std=loaded.std)


def prepare_batch(loaded: LoadedCheckpoint, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """The float batch [N, C, S, S] the model sees, via the dataset's native size and the training transform."""
    return model_input(loaded, native_batch(loaded, images))
