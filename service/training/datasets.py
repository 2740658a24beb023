"""Datasets held once as uint8 tensors, and the one batch transform shared by training and inference."""

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from torch.nn import functional as F

from service.errors import DatasetUnavailable, InvalidInput
from service.jobspec.spec import is_uploaded
from service.training.downloads import DownloadListener, download_dataset
from service.training.synthetic import SYNTHETIC_CLASSES, make_synthetic

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
UPLOADED_FORMAT = "convlab-dataset/1"  # an uploaded dataset's stored file (training/uploaded.py writes it)
UPLOADED_META_KEY = "convlab"
_CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")  # torchvision reads all


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like: channels, classes, native side length, per-channel mean/std in [0, 1]."""

    name: str
    in_channels: int
    num_classes: int
    class_names: tuple[str, ...]
    native_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    folder: str | None  # where its files live under data_dir; None when it needs no files


@dataclass(frozen=True)
class ImageData:
    """A split: `images` uint8 [N, C, H, W], `labels` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n: int | None) -> "ImageData":
        """The first `n` examples (all of them when `n` is None)."""
        return self if n is None else ImageData(self.images[:n], self.labels[:n])

    def to(self, device: torch.device) -> "ImageData":
        """The same split on `device`."""
        return ImageData(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Splits:
    """Train and test splits of one dataset, with a checksum of exactly these tensors."""

    info: DatasetInfo
    train: ImageData
    test: ImageData
    checksum: str


_INFOS = {
    info.name: info
    for info in (
        DatasetInfo("fashion_mnist", 1, 10, FASHION_MNIST_CLASSES, 28, (0.2860,), (0.3530,), "FashionMNIST/raw"),
        DatasetInfo("mnist", 1, 10, MNIST_CLASSES, 28, (0.1307,), (0.3081,), "MNIST/raw"),
        DatasetInfo(
            "cifar10",
            3,
            10,
            CIFAR10_CLASSES,
            32,
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
            "cifar-10-batches-py",
        ),
        DatasetInfo("synthetic", 1, 10, SYNTHETIC_CLASSES, 28, (0.5,), (0.25,), None),
    )
}


def list_datasets() -> list[DatasetInfo]:
    """Every dataset the trainer knows."""
    return list(_INFOS.values())


def get_dataset_info(name: str) -> DatasetInfo:
    """The description of dataset `name`; InvalidInput naming the choices if unknown."""
    try:
        return _INFOS[name]
    except KeyError:
        raise InvalidInput(f"unknown dataset {name!r}; choose one of {sorted(_INFOS)}") from None


def _missing_files(info: DatasetInfo, data_dir: Path) -> list[str]:
    if info.folder is None:
        return []
    folder = data_dir / info.folder
    if info.name == "cifar10":
        return [f for f in _CIFAR_FILES if not (folder / f).is_file()]
    return [f for f in _MNIST_FILES if not (folder / f).is_file() and not (folder / f"{f}.gz").is_file()]


def check_dataset_available(name: str, data_dir: Path, allow_download: bool) -> None:
    """Raise DatasetUnavailable, naming the directory searched and the fix, if `name` cannot be loaded."""
    info = get_dataset_info(name)
    missing = _missing_files(info, Path(data_dir))
    if not missing or allow_download:
        return
    folder = (Path(data_dir) / str(info.folder)).resolve()
    raise DatasetUnavailable(
        f"dataset {name!r} is not available: searched {folder} and did not find {', '.join(missing)}. "
        f"Put the files there (torchvision's layout), point CONVLAB_DATA_DIR at a directory that has them, "
        f"or set CONVLAB_ALLOW_DOWNLOAD=true to download them."
    )


def _read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) as a uint8 array."""
    gz = path.with_name(path.name + ".gz")
    raw = gzip.decompress(gz.read_bytes()) if gz.is_file() else path.read_bytes()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DatasetUnavailable(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetUnavailable(f"{path} is truncated: expected {int(np.prod(dims))} values, got {data.size}")
    return data.reshape(tuple(int(d) for d in dims))


def _read_mnist_split(folder: Path, prefix: str) -> ImageData:
    images = torch.from_numpy(_read_idx(folder / f"{prefix}-images-idx3-ubyte").copy())
    labels = torch.from_numpy(_read_idx(folder / f"{prefix}-labels-idx1-ubyte").astype(np.int64))
    return ImageData(images.unsqueeze(1), labels)  # [N, 28, 28] -> [N, 1, 28, 28]


def _read_cifar_split(data_dir: Path, train: bool) -> ImageData:
    import torchvision.datasets as tvd

    try:
        ds = tvd.CIFAR10(root=str(data_dir), train=train, download=False)  # checks the files' md5 sums
    except RuntimeError as exc:
        raise DatasetUnavailable(f"CIFAR-10 under {data_dir.resolve()} is unusable: {exc}") from exc
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # NHWC -> NCHW
    return ImageData(images, torch.tensor(ds.targets, dtype=torch.int64))


@lru_cache(maxsize=4)
def _read_full(name: str, data_dir: Path) -> tuple[ImageData, ImageData]:
    if name == "synthetic":
        return ImageData(*make_synthetic(train=True)), ImageData(*make_synthetic(train=False))
    if name == "cifar10":
        return _read_cifar_split(data_dir, True), _read_cifar_split(data_dir, False)
    folder = data_dir / str(get_dataset_info(name).folder)
    return _read_mnist_split(folder, "train"), _read_mnist_split(folder, "t10k")


def decode_uploaded(name: str, data: bytes) -> tuple[DatasetInfo, ImageData, ImageData]:
    """The facts and both splits of a stored dataset called `name` (`flowers@2`); DatasetUnavailable if unreadable."""
    try:
        tensors = st_load(data)
        header_length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_length])
        meta = json.loads(header["__metadata__"][UPLOADED_META_KEY])
    except (SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise DatasetUnavailable(f"dataset {name!r}: its stored file is unreadable ({exc})") from None
    if meta.get("format") != UPLOADED_FORMAT:
        raise DatasetUnavailable(f"dataset {name!r}: unknown stored format {meta.get('format')!r}")
    train = ImageData(tensors["train.images"], tensors["train.labels"])
    test = ImageData(tensors["test.images"], tensors["test.labels"])
    classes = tuple(str(c) for c in meta["classes"])
    channels, size = int(train.images.shape[1]), int(train.images.shape[-1])
    mean, std = tuple(float(m) for m in meta["mean"]), tuple(float(s) for s in meta["std"])
    return DatasetInfo(name, channels, len(classes), classes, size, mean, std, None), train, test


@lru_cache(maxsize=2)
def read_uploaded(name: str, path: Path) -> tuple[DatasetInfo, ImageData, ImageData]:
    """`decode_uploaded` of a local file (cached by path: a cached file is named by its content's hash)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetUnavailable(f"dataset {name!r}: cannot read {path} ({exc})") from None
    return decode_uploaded(name, data)


def dataset_checksum(train: ImageData, test: ImageData) -> str:
    """sha256 over the images and labels of both splits, in a fixed order."""
    digest = hashlib.sha256()
    for t in (train.images, train.labels, test.images, test.labels):
        digest.update(t.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def load_dataset(
    name: str,
    data_dir: Path,
    *,
    allow_download: bool = False,
    mirror: str | None = None,
    on_download: DownloadListener | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    uploaded: Path | None = None,
) -> Splits:
    """Load both splits as uint8 tensors, cut to the requested subsets.

    Missing files are downloaded only if allowed (from `mirror` instead of upstream when given), reporting
    to `on_download`. An uploaded dataset (`flowers@2`) is read from the local file `uploaded`, which the worker
    fetched from the database and checked.
    """
    if is_uploaded(name):
        if uploaded is None:
            raise DatasetUnavailable(f"dataset {name!r} is uploaded: its stored file was not given")
        info, full_train, full_test = read_uploaded(name, Path(uploaded))
        train, test = full_train.head(train_subset), full_test.head(test_subset)
        return Splits(info, train, test, dataset_checksum(train, test))
    info = get_dataset_info(name)
    data_dir = Path(data_dir)
    check_dataset_available(name, data_dir, allow_download)
    if info.folder is not None and _missing_files(info, data_dir):
        download_dataset(
            name,
            data_dir,
            info.folder,
            wanted=lambda: _missing_files(info, data_dir),
            mirror=mirror,
            listener=on_download,
        )
    full_train, full_test = _read_full(name, data_dir.resolve())
    train, test = full_train.head(train_subset), full_test.head(test_subset)
    return Splits(info, train, test, dataset_checksum(train, test))


def preprocess(images: torch.Tensor, *, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Turn uint8 images [N, C, H, W] into the float batch a model sees: scale to [0, 1], normalize, resize.

    Resizing is bilinear (antialiased when shrinking, like PIL's); normalization is per channel.
    """
    if images.dim() != 4:
        raise InvalidInput(f"expected images shaped [N, C, H, W], got {tuple(images.shape)}")
    x = images.to(torch.float32).div_(255.0)
    if any(m != 0.0 for m in mean) or any(s != 1.0 for s in std):
        m, s = _normalizer(tuple(mean), tuple(std), x.device)
        x = (x - m) / s
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        shrink = size < height or size < width
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return x


@lru_cache(maxsize=64)
def _normalizer(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Per-channel mean and std as [1, C, 1, 1] float32 tensors, made once per (mean, std, device): building them
    cost a single-image predict a tenth of its decode."""
    made = (torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1) for values in (mean, std))
    return tuple(made)
