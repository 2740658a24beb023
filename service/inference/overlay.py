"""Heatmaps drawn over their images: one PNG, a tile per image (matplotlib's colormap, PIL's encoder)."""

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

TILE_MIN_SIDE = 128  # tiles are scaled up by a whole factor to at least this side (28x28 is too small to see)
COLUMNS = 8


def overlay(image: torch.Tensor, heatmap: torch.Tensor, *, alpha: float = 0.5) -> np.ndarray:
    """An image [C, H, W] in [0, 1] (gray or RGB) under its heatmap [H, W] in [0, 1], as uint8 RGB [H, W, 3]."""
    rgb = image.expand(3, -1, -1).permute(1, 2, 0).numpy()  # gray shows as gray
    colours: np.ndarray = colormaps["jet"](heatmap.numpy())[..., :3]
    weight = alpha * heatmap.numpy()[..., None]  # cold pixels keep the image, hot ones take the colour
    blended: np.ndarray = np.rint((1.0 - weight) * rgb * 255 + weight * colours * 255).astype(np.uint8)
    return blended


def overlay_png(images: Sequence[torch.Tensor], heatmaps: Sequence[torch.Tensor]) -> bytes:
    """The overlays of `images`, rows of up to 8 tiles, each scaled up to at least 128 pixels, as PNG bytes."""
    tiles = [overlay(im, h) for im, h in zip(images, heatmaps, strict=True)]
    height, width = tiles[0].shape[:2]
    scale = max(1, math.ceil(TILE_MIN_SIDE / max(height, width)))
    columns = min(COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    sheet = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * height : (r + 1) * height, c * width : (c + 1) * width] = tile
    picture = Image.fromarray(sheet).resize((columns * width * scale, rows * height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
