"""Serving trained models: image decoding, the LRU cache of loaded checkpoints, and the forward pass.

Every input form (upload, base64, pixel array) becomes a uint8 tensor [C, H, W] shaped like a dataset image
(the dataset's channels and native side), then goes through `preprocess`, the exact training transform.
"""

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import torch
from anyio import CapacityLimiter, to_thread
from PIL import Image, UnidentifiedImageError
from torch.nn import functional as F

from service.errors import InvalidInput, PayloadTooLarge
from service.training.checkpoints import LoadedCheckpoint, load_checkpoint
from service.training.datasets import get_dataset_info, preprocess

IMAGE_FORMATS = {"PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"}


@dataclass(frozen=True)
class ImageLimits:
    """Configurable bounds on one predict request."""

    max_images: int
    max_pixels: int


@dataclass(frozen=True)
class Prediction:
    class_index: int
    label: str
    probability: float
    top_k: list[tuple[int, str, float]]


def check_count(n: int, limits: ImageLimits) -> None:
    """InvalidInput unless 1 <= n <= max_images."""
    if n < 1:
        raise InvalidInput("no images given: send a file, a non-empty `images` list or a non-empty `pixels` list")
    if n > limits.max_images:
        raise PayloadTooLarge(f"{n} images in one request; the limit is {limits.max_images} (predict_max_images)")


def _to_mode(image: Image.Image, in_channels: int) -> Image.Image:
    """Gray for 1 channel, RGB for 3; transparency is composited over black, the datasets' background."""
    target = "L" if in_channels == 1 else "RGB"
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
            array = np.asarray(_to_mode(image, in_channels), dtype=np.uint8)
    except UnidentifiedImageError:
        raise InvalidInput(f"{name}: not an image (expected PNG or JPEG bytes)") from None
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"{name}: too many pixels (decompression bomb protection)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{name}: corrupt or truncated image ({exc})") from None
    tensor = torch.from_numpy(array.copy())
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


class ModelCache:
    """A thread-safe LRU cache of loaded checkpoints, keyed by (job id, checkpoint id, sha256)."""

    def __init__(self, capacity: int, *, lookup_ttl_s: float = 1.0) -> None:
        self.capacity = capacity
        self.lookup_ttl_s = lookup_ttl_s
        self._items: OrderedDict[Hashable, LoadedCheckpoint] = OrderedDict()
        self._lookups: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def recall(self, lookup: Hashable) -> Any:
        """A remembered lookup result (which checkpoint a request means) younger than `lookup_ttl_s`, or None."""
        with self._lock:
            found = self._lookups.get(lookup)
        return found[1] if found is not None and found[0] > time.monotonic() else None

    def remember(self, lookup: Hashable, value: Any) -> None:
        """Remember `value` for `lookup_ttl_s`, so hot prediction paths skip the database."""
        with self._lock:
            if len(self._lookups) > 4096:
                self._lookups.clear()
            self._lookups[lookup] = (time.monotonic() + self.lookup_ttl_s, value)

    def get(self, key: Hashable, read: Callable[[], bytes], device: torch.device) -> LoadedCheckpoint:
        """The loaded checkpoint for `key`, reading and loading it with `read()` on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        loaded = load_checkpoint(read())
        loaded.model.to(device).eval()
        with self._lock:
            self.misses += 1
            self._items[key] = loaded
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return loaded

    def __len__(self) -> int:
        return len(self._items)


def prepare_batch(loaded: LoadedCheckpoint, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """The float batch [N, C, S, S] the model sees, via the dataset's native size and the training transform."""
    native_size = get_dataset_info(loaded.dataset).native_size
    native = torch.stack([to_native(im, native_size) for im in images])
    return preprocess(native, size=loaded.input_size, mean=loaded.mean, std=loaded.std)


def forward(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, K] for a preprocessed batch, under inference mode."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(batch.to(device))
        return torch.softmax(logits.float(), dim=1).cpu()


def to_predictions(probs: torch.Tensor, class_names: Sequence[str], top_k: int) -> list[Prediction]:
    """The most likely class and the `top_k` best, per row of `probs`."""
    k = min(top_k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    out = []
    for row_v, row_i in zip(values.tolist(), indices.tolist(), strict=True):
        ranked = [(i, class_names[i], p) for i, p in zip(row_i, row_v, strict=True)]
        out.append(Prediction(ranked[0][0], ranked[0][1], ranked[0][2], ranked))
    return out


class DynamicBatcher:
    """Joins concurrent predict requests for one model into shared forward passes (off the event loop).

    A request waits at most `max_delay_s` for others to join, and a batch holds up to `max_batch` images;
    requests that arrive while a forward pass runs form the next batch, so batches grow with the load.
    """

    def __init__(self, *, max_batch: int, max_delay_s: float, limiter: CapacityLimiter | None = None) -> None:
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.limiter = limiter
        self._queue: asyncio.Queue[tuple[torch.nn.Module, torch.Tensor, asyncio.Future[torch.Tensor]]]
        self._queue = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    @property
    def busy(self) -> bool:
        """Whether requests are waiting or a batch is in flight."""
        return not self._queue.empty() or (self._task is not None and not self._task.done())

    async def submit(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities for `batch`, computed alone or together with other waiting requests."""
        if self.max_batch <= 1:
            return await to_thread.run_sync(forward, model, batch, limiter=self.limiter)
        future: asyncio.Future[torch.Tensor] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((model, batch, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _gather(self) -> list[tuple[torch.nn.Module, torch.Tensor, asyncio.Future[torch.Tensor]]]:
        items = [self._queue.get_nowait()]
        count = items[0][1].shape[0]
        deadline = asyncio.get_running_loop().time() + self.max_delay_s
        while count < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                item = (
                    self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, TimeoutError):
                break
            items.append(item)
            count += item[1].shape[0]
        return items

    async def _drain(self) -> None:
        while not self._queue.empty():
            items = await self._gather()
            model = items[0][0]
            try:
                batch = torch.cat([x for _, x, _ in items])
                probs = await to_thread.run_sync(forward, model, batch, limiter=self.limiter)
            except Exception as exc:  # hand the failure to every waiting request
                for _, _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            for part, (_, _, future) in zip(torch.split(probs, [x.shape[0] for _, x, _ in items]), items, strict=True):
                if not future.done():
                    future.set_result(part)

    async def aclose(self) -> None:
        """Wait for the batches in flight."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class BatcherPool:
    """One DynamicBatcher per loaded model (cache key); idle batchers are dropped when the pool grows."""

    def __init__(
        self, *, max_batch: int, max_delay_s: float, limiter: CapacityLimiter | None = None, max_idle: int = 64
    ) -> None:
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.limiter = limiter
        self.max_idle = max_idle
        self._batchers: dict[Hashable, DynamicBatcher] = {}

    def get(self, key: Hashable) -> DynamicBatcher:
        """The batcher for `key`, created on first use."""
        if key not in self._batchers:
            if len(self._batchers) >= self.max_idle:
                self._batchers = {k: b for k, b in self._batchers.items() if b.busy}  # aclose waits for the rest
            self._batchers[key] = DynamicBatcher(
                max_batch=self.max_batch, max_delay_s=self.max_delay_s, limiter=self.limiter
            )
        return self._batchers[key]

    async def aclose(self) -> None:
        """Wait for every batch in flight."""
        await asyncio.gather(*(b.aclose() for b in self._batchers.values()))
