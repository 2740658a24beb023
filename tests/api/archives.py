"""Archives for the dataset tests, built from real images: ImageFolder zips and tars, and hostile ones."""

import io
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from service.training.datasets import FASHION_MNIST_CLASSES, ImageData, load_dataset

Files = Mapping[str, bytes]


def image_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """A uint8 array ([H, W] gray or [H, W, 3] colour) encoded as an image file."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt)
    return out.getvalue()


def class_folder_name(label: int) -> str:
    """A folder name for a Fashion-MNIST class ("T-shirt/top" has a slash)."""
    return FASHION_MNIST_CLASSES[label].replace("/", "-").replace(" ", "_").lower()


def split_files(split: ImageData, prefix: str = "") -> dict[str, bytes]:
    """One PNG per example, `<prefix><class>/<index>.png`."""
    return {
        f"{prefix}{class_folder_name(int(label))}/{i:05d}.png": image_bytes(image[0].numpy())
        for i, (image, label) in enumerate(zip(split.images, split.labels, strict=True))
    }


def fashion_files(data_dir: Path, *, train: int, test: int | None = None) -> dict[str, bytes]:
    """The first `train` real Fashion-MNIST training images as class folders; with `test`, as train/ and test/."""
    splits = load_dataset("fashion_mnist", data_dir, train_subset=train, test_subset=test or 1)
    if test is None:
        return split_files(splits.train)
    return {**split_files(splits.train, "train/"), **split_files(splits.test, "test/")}


def zip_bytes(
    files: Files, *, order: Iterable[str] | None = None, date: tuple[int, ...] = (2020, 1, 1, 0, 0, 0)
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in order or files:
            archive.writestr(zipfile.ZipInfo(name, date_time=date), files[name], zipfile.ZIP_DEFLATED)
    return out.getvalue()


def tar_bytes(files: Files, *, mode: str = "w:gz", mtime: float | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime if mtime is not None else time.time()
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tar_with(member: tarfile.TarInfo, files: Files) -> bytes:
    """A tar.gz of `files` plus one special member (a link, say)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        archive.addfile(member)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares `width` x `height` grayscale pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)  # far too little data: the decoder must never get that far
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")
