"""One uploaded image decoded, checked and brought to the stored size: uint8 [C, S, S], C 1 (grayscale) or 3.

The format is the one its name says (Pillow may try only that decoder), and its declared size is checked
against `max_pixels` before a pixel is decoded, so a small file declaring 100,000 x 100,000 pixels costs nothing.
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidInput

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def image_format(path: str) -> str | None:
    """The Pillow format an entry's name promises, or None when it is not an image name."""
    suffix = path[path.rfind(".") :].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return FORMATS.get(suffix)


def decode_image(path: str, data: bytes, *, size: int, max_pixels: int) -> np.ndarray:
    """The image at `path` as uint8 [C, size, size] (padded to a square, then resized); InvalidInput naming it
    when it is not the image its name says, too large, or damaged."""
    fmt = image_format(path)
    if fmt is None:
        raise InvalidInput(f"archive: {path} is not an image ({', '.join(sorted(FORMATS))})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
        try:
            image = Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError:
            raise InvalidInput(f"archive: {path} declares too many pixels (a decompression bomb)") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise InvalidInput(f"archive: {path} is not a {fmt} image, as its name says") from None
        width, height = image.size
        if width * height > max_pixels:
            raise InvalidInput(
                f"archive: {path} declares {width}x{height} pixels, over the limit of {max_pixels} "
                "(CONVLAB_DATASET_MAX_PIXELS)"
            )
        try:
            image.load()
            converted = image.convert("L" if image.mode in GRAY_MODES else "RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise InvalidInput(f"archive: {path} is a damaged {fmt} image") from None
    if converted.size != (size, size):
        converted = ImageOps.pad(converted, (size, size), method=Image.Resampling.BILINEAR, color=0)
    array = np.asarray(converted, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # [S, S] / [S, S, 3] -> [C, S, S]
