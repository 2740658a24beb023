"""A PNG grid of sample images per class of a stored dataset: one row per class, its name beside it."""

import io

import numpy as np
from PIL import Image, ImageDraw

from service.training.datasets import decode_uploaded

LABEL_WIDTH = 120
CELL = 64


def sample_grid(name: str, data: bytes, *, per_class: int, max_classes: int = 50) -> bytes:
    """The first `per_class` training images of each class (the first `max_classes` classes), as a PNG."""
    info, train, _ = decode_uploaded(name, data)
    classes = info.class_names[:max_classes]
    labels = train.labels.numpy()
    sheet = Image.new("RGB", (LABEL_WIDTH + per_class * CELL, max(len(classes), 1) * CELL), "white")
    draw = ImageDraw.Draw(sheet)
    for row, label in enumerate(classes):
        draw.text((4, row * CELL + CELL // 2 - 6), label[:18], fill="black")
        for col, index in enumerate(np.flatnonzero(labels == row)[:per_class]):
            pixels = train.images[int(index)].numpy().transpose(1, 2, 0)  # [C, S, S] -> [S, S, C]
            tile = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
            sheet.paste(
                tile.resize((CELL - 4, CELL - 4), Image.Resampling.NEAREST), (LABEL_WIDTH + col * CELL, row * CELL)
            )
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()
