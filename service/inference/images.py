"""Images for prediction: decoding, pixel arrays, and the batch a model sees.

Every input form (upload, base64, pixel array) becomes a uint8 tensor [C, H, W] shaped like a dataset image
(the dataset's channels and native side), then goes through `preprocess`, the exact training transform. The
predict paths hand the batcher native uint8 batches, and it transforms each forward pass's batch once
(service/inference/batching.py): per request, the transform's few tensor operations cost more than they compute.
"""

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.nn import functional as F

try:  # libspng's binding, installed on x86-64 Linux (pyproject.toml); elsewhere Pillow decodes every PNG
    import pyspng  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover
    pyspng = None

from service.errors import InvalidInput, PayloadTooLarge
from service.training.checkpoints import LoadedCheckpoint
from service.training.datasets import preprocess

IMAGE_FORMATS = {"PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"}
# A PNG's signature, then its first chunk, IHDR: length 13, type, width, height, bit depth, colour type,
# compression, filter and interlace methods
PNG_HEADER = struct.Struct(">8sI4sIIBBBBB")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHUNK_HEAD = struct.Struct(">I4s")  # a chunk's data length and type; its data and CRC follow
CRC = struct.Struct(">I")
MAX_BARE_CHUNKS = 64  # a PNG of more chunks than this (IDAT cut small) is left to Pillow
# The PNG colour type whose 8-bit samples are already the model's mode, by input channels (grey, RGB), and the
# mode's name.
PLAIN_COLOUR_TYPE = {1: 0, 3: 2}
MODES = {1: "L", 3: "RGB"}
# libspng's path pays for a second inflate (the checksum check); past this many samples (a 64x64 grey image, a
# 36x36 RGB one) Pillow's own overhead may no longer outweigh it (docs/benchmarks-serve.md, step 8).
PLAIN_MAX_SAMPLES = 4096


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


def _too_many_pixels(name: str, width: int, height: int, limits: ImageLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{name}: {width}x{height} pixels exceeds the limit of {limits.max_pixels} (predict_max_pixels)"
    )


def _bare_idat(data: bytes) -> bytes | None:
    """The joined IDAT data of a PNG whose chunks after the signature are exactly IHDR, IDAT..., IEND, each with
    a right CRC (no animation, palette, transparency or colour information that Pillow might read differently);
    None for any other file."""
    view, offset, kinds, idat = memoryview(data), len(PNG_SIGNATURE), list[bytes](), list[memoryview]()
    while offset + 12 <= len(data) and len(kinds) <= MAX_BARE_CHUNKS:
        length, kind = CHUNK_HEAD.unpack_from(data, offset)
        end = offset + 8 + length
        if end + 4 > len(data) or zlib.crc32(view[offset + 4 : end]) != CRC.unpack_from(data, end)[0]:
            return None
        kinds.append(kind)
        if kind == b"IDAT":
            idat.append(view[offset + 8 : end])
        offset = end + 4
    bare = len(kinds) >= 3 and kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and offset == len(data)
    return b"".join(idat) if bare and len(idat) == len(kinds) - 2 else None


def _inflates_to(idat: bytes, size: int) -> bool:
    """Whether `idat` is one whole zlib stream, its checksum right, of exactly `size` bytes (inflating at most
    one byte more). libspng, told by pyspng to ignore checksums, would decode a damaged stream into noise where
    Pillow refuses it."""
    inflater = zlib.decompressobj()
    try:
        scanlines = inflater.decompress(idat, size + 1)
    except zlib.error:
        return False
    return len(scanlines) == size and inflater.eof and not inflater.unused_data


def _plain_png(data: bytes, *, in_channels: int, limits: ImageLimits, name: str) -> torch.Tensor | None:
    """A small, bare, whole, non-interlaced 8-bit PNG already in the model's mode (grey, or RGB for 3 channels)
    decoded by libspng: pixel for pixel what Pillow gives, at a fraction of its cost for a small image
    (docs/benchmarks-serve.md, step 8). None for any other image, damaged ones included: Pillow decodes or
    refuses them. Its size is read from IHDR, the first chunk by the PNG standard, and checked first."""
    if pyspng is None or len(data) < PNG_HEADER.size:
        return None
    signature, length, chunk, width, height, depth, colour, *methods = PNG_HEADER.unpack_from(data)
    if signature != PNG_SIGNATURE or (length, chunk, depth, *methods) != (13, b"IHDR", 8, 0, 0, 0):
        return None  # not a PNG, or one whose samples or methods (compression, filter, interlace) are not plain
    if colour != PLAIN_COLOUR_TYPE.get(in_channels) or not width or not height:
        return None
    if width * height > limits.max_pixels:
        raise _too_many_pixels(name, width, height, limits)
    if width * height * in_channels > PLAIN_MAX_SAMPLES:
        return None
    idat = _bare_idat(data)
    if idat is None or not _inflates_to(idat, height * (1 + width * in_channels)):  # a filter byte per row
        return None
    try:
        array = pyspng.load(data, format=MODES[in_channels])
    except RuntimeError as exc:  # libspng's own checks: its message says what is wrong
        raise InvalidInput(f"{name}: corrupt or truncated image ({exc})") from None
    return _channels_first(array)


def _channels_first(array: np.ndarray) -> torch.Tensor:
    """A decoded [H, W] or [H, W, C] uint8 array as a [C, H, W] tensor (sharing a grey image's memory)."""
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def decode_image(data: bytes, *, in_channels: int, limits: ImageLimits, name: str = "image") -> torch.Tensor:
    """Decode PNG/JPEG (or BMP, GIF, WebP, TIFF) bytes into uint8 [C, H, W]; 4xx naming `name` if it is bad."""
    if not data:
        raise InvalidInput(f"{name}: empty file")
    if (plain := _plain_png(data, in_channels=in_channels, limits=limits, name=name)) is not None:
        return plain
    try:
        with Image.open(BytesIO(data)) as image:
            if image.format not in IMAGE_FORMATS:
                raise InvalidInput(f"{name}: unsupported image format {image.format}; send PNG or JPEG")
            width, height = image.size
            if width * height > limits.max_pixels:
                raise _too_many_pixels(name, width, height, limits)
            image.load()
            array = np.array(_to_mode(image, in_channels), dtype=np.uint8)  # a writable copy, the only one
    except UnidentifiedImageError:
        raise InvalidInput(f"{name}: not an image (expected PNG or JPEG bytes)") from None
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"{name}: too many pixels (decompression bomb protection)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{name}: corrupt or truncated image ({exc})") from None
    return _channels_first(array)


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
