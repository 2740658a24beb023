"""An uploaded archive ingested once into the trainer's form, and the content address that names it.

The address is the sha256 of the canonical content: a header line with the ingestion options (stored size,
validation fraction and seed, which change the tensors), then one line per image, sorted by its path inside
the dataset (below any folder around everything), with the sha256 of its bytes. Zipped again, in another order,
with other timestamps, or as a tar instead of a zip, the same images give the same address.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.config import UploadSettings
from service.errors import InvalidInput, PayloadTooLarge
from service.ingest.archive import read_members
from service.ingest.images import decode_image
from service.ingest.layout import Layout, find_layout, is_litter, refuse_non_image
from service.training.datasets import ImageData
from service.training.uploaded import channel_stats, encode_uploaded

HEADER = "convlab-dataset/1"


@dataclass(frozen=True)
class Options:
    """How an archive is ingested: the stored side, and the held-out split made when none is given."""

    size: int = 32
    val_fraction: float = 0.2
    seed: int = 0

    def header(self) -> str:
        return f"{HEADER} size={self.size} val_fraction={self.val_fraction!r} seed={self.seed}\n"


@dataclass
class _Read:
    """What one pass over the archive found."""

    images: dict[str, np.ndarray] = field(default_factory=dict)  # path -> uint8 [C, S, S]
    digests: dict[str, str] = field(default_factory=dict)  # path -> sha256 of its bytes
    folders: list[str] = field(default_factory=list)
    colour: bool = False  # one colour image makes the dataset three channels

    def stored_bytes(self, size: int) -> int:
        """What the images take stored: images x channels x size x size."""
        return len(self.images) * (3 if self.colour else 1) * size * size


@dataclass(frozen=True)
class Ingested:
    """An ingested dataset: its content address, its stored bytes and its facts (JSON-able)."""

    sha256: str
    data: bytes
    facts: dict[str, Any]


def _read(path: Path, limits: UploadSettings, options: Options) -> _Read:
    found = _Read()
    for member in read_members(path, limits):
        if is_litter(member.path):
            continue
        if member.data is None:
            found.folders.append(member.path)
            continue
        if member.path in found.images:
            raise InvalidInput(f"archive: {member.path} appears twice")
        refuse_non_image(member.path, member.data)
        image = decode_image(member.path, member.data, size=options.size, max_pixels=limits.max_pixels)
        found.images[member.path], found.colour = image, found.colour or image.shape[0] == 3
        found.digests[member.path] = hashlib.sha256(member.data).hexdigest()
        _refuse_oversized(found, limits, options)
    if not found.images:
        raise InvalidInput("archive: holds no images")
    return found


def _refuse_oversized(found: _Read, limits: UploadSettings, options: Options) -> None:
    """Refuse, while reading, a dataset whose stored images would pass the limit: a small archive of small images
    asked to be stored large would otherwise take memory far past its own size."""
    stored = found.stored_bytes(options.size)
    if stored > limits.max_ingested_bytes:
        raise PayloadTooLarge(
            f"archive: {len(found.images)} images stored at {options.size}x{options.size} take {stored} bytes, over "
            f"the limit of {limits.max_ingested_bytes} (CONVLAB_DATASET_MAX_INGESTED_BYTES); send fewer images or "
            "choose a smaller size"
        )


def _classes(found: _Read, layout: Layout, limits: UploadSettings) -> tuple[str, ...]:
    """The class names (sorted folder names), refusing fewer than two, too many, or an empty one."""
    with_files = {layout.place(p)[1] for p in found.images}
    folders = {c for d in found.folders if (c := layout.class_folder(d)) is not None}
    empty = sorted(folders - with_files)
    if empty:
        raise InvalidInput(f"archive: class folder {empty[0]!r} holds no images (empty class)")
    classes = tuple(sorted(with_files))
    if len(classes) < 2:
        raise InvalidInput(f"archive: {len(classes)} class folder(s) {list(classes)}; a dataset needs at least two")
    if len(classes) > limits.max_classes:
        raise InvalidInput(f"archive: {len(classes)} classes, over {limits.max_classes} (CONVLAB_DATASET_MAX_CLASSES)")
    return classes


def content_address(found: _Read, layout: Layout, options: Options) -> str:
    """sha256 of the options and the sorted (path below the wrapper folder, sha256 of bytes) lines."""
    digest = hashlib.sha256(options.header().encode())
    for path in sorted(found.digests, key=lambda p: p.removeprefix(layout.prefix)):
        digest.update(f"{path.removeprefix(layout.prefix)}\0{found.digests[path]}\n".encode())
    return digest.hexdigest()


def _split(labels: np.ndarray, options: Options) -> np.ndarray:
    """A seeded, stratified held-out mask: `val_fraction` of each class (at least one, never all)."""
    rng = np.random.default_rng(options.seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n = len(members)
        k = min(max(round(n * options.val_fraction), 1 if options.val_fraction > 0 else 0), n - 1)
        held[rng.permutation(members)[:k]] = True
    return held


def _tensors(found: _Read, layout: Layout, classes: tuple[str, ...], options: Options) -> tuple[ImageData, ImageData]:
    paths = sorted(found.images, key=lambda p: p.removeprefix(layout.prefix))
    places = [layout.place(p) for p in paths]
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for _, c in places], dtype=np.int64)
    held = np.array([s == "test" for s, _ in places]) if layout.given_split else _split(labels, options)
    images = np.empty((len(paths), 3 if found.colour else 1, options.size, options.size), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = found.images.pop(path)  # a grayscale image broadcasts to three channels; each one freed as copied
    rng = np.random.default_rng(options.seed + 1)  # mixed classes, so that a train_subset sees every class
    splits = []
    for mask in (~held, held):
        chosen = np.flatnonzero(mask)[rng.permutation(int(mask.sum()))]
        splits.append(ImageData(torch.from_numpy(images[chosen]), torch.from_numpy(labels[chosen])))
    return splits[0], splits[1]


def _counts(classes: tuple[str, ...], train: ImageData, test: ImageData) -> dict[str, dict[str, int]]:
    per_split = [torch.bincount(s.labels, minlength=len(classes)).tolist() for s in (train, test)]
    return {c: {"train": int(per_split[0][i]), "test": int(per_split[1][i])} for i, c in enumerate(classes)}


def ingest_archive(path: Path, limits: UploadSettings, options: Options) -> Ingested:
    """Read, check and convert the archive at `path`; a 4xx naming the reason when anything in it is hostile."""
    found = _read(path, limits, options)
    layout = find_layout(list(found.images), found.folders)
    classes = _classes(found, layout, limits)
    train, test = _tensors(found, layout, classes, options)
    if len(train) < 2 or len(test) < 1:
        raise InvalidInput("archive: needs at least two training images and one held-out image")
    mean, std = channel_stats(train.images)
    data = encode_uploaded(train, test, classes=classes, mean=mean, std=std)
    facts = {
        "classes": list(classes),
        "counts": _counts(classes, train, test),
        "size": options.size,
        "channels": int(train.images.shape[1]),
        "mean": list(mean),
        "std": list(std),
        "split": "given" if layout.given_split else f"val_fraction={options.val_fraction} seed={options.seed}",
        "train_images": len(train),
        "test_images": len(test),
    }
    return Ingested(content_address(found, layout, options), data, facts)
