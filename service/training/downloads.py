"""Datasets on first use: fetch a dataset's files by torchvision's list (names, upstream mirrors, md5 sums).

Each file streams into a temporary directory under the data directory and is moved into place only once its
md5 matches torchvision's, so a corrupt or truncated download leaves nothing a later job would trust. A file
lock under the data directory makes concurrent workers (processes or hosts sharing the directory) download a
dataset once: the others wait, then find the files.
"""

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock

from service.errors import DatasetUnavailable
from service.training.records import DownloadProgress

DownloadListener = Callable[[DownloadProgress], None]
REPORT_SECONDS = 1.0  # progress at most this often per file
CHUNK_BYTES = 1 << 20
TIMEOUT = httpx.Timeout(30.0, connect=15.0)  # a silent server fails the download instead of hanging the job


@dataclass(frozen=True)
class Source:
    """One file to fetch: its name, torchvision's md5 and the addresses to try in order."""

    filename: str
    md5: str
    urls: tuple[str, ...]


def sources(dataset: str, mirror: str | None) -> list[Source]:
    """The files of `dataset` from torchvision's class attributes; `mirror` replaces the upstream bases."""
    import torchvision.datasets as tvd

    def bases(upstream: list[str]) -> list[str]:
        return [mirror.rstrip("/") + "/"] if mirror else upstream

    if dataset == "cifar10":
        upstream = tvd.CIFAR10.url.rsplit("/", 1)[0] + "/"
        filename = tvd.CIFAR10.filename
        return [Source(filename, tvd.CIFAR10.tgz_md5, tuple(b + filename for b in bases([upstream])))]
    cls = {"fashion_mnist": tvd.FashionMNIST, "mnist": tvd.MNIST}[dataset]
    return [Source(name, md5, tuple(b + name for b in bases(cls.mirrors))) for name, md5 in cls.resources]


def download_dataset(
    dataset: str,
    data_dir: Path,
    folder: str,
    *,
    wanted: Callable[[], list[str]],
    mirror: str | None = None,
    listener: DownloadListener | None = None,
) -> None:
    """Fetch and install the files `wanted()` still names (re-checked under the lock); DatasetUnavailable on failure.

    `wanted` returns the missing files as `_missing_files` spells them; an empty list means another worker
    finished the download while this one waited for the lock.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(data_dir / f".{dataset}.download.lock"))
        lock.acquire()
    except OSError as exc:
        raise DatasetUnavailable(
            f"cannot download {dataset!r} into {data_dir.resolve()} ({exc}); point CONVLAB_DATA_DIR at a writable "
            f"directory or put the files there"
        ) from exc
    try:
        _download_locked(dataset, data_dir, folder, wanted=wanted, mirror=mirror, listener=listener)
    finally:
        lock.release()


def _download_locked(
    dataset: str,
    data_dir: Path,
    folder: str,
    *,
    wanted: Callable[[], list[str]],
    mirror: str | None,
    listener: DownloadListener | None,
) -> None:
    missing = wanted()
    if not missing:
        return
    with tempfile.TemporaryDirectory(prefix=f".{dataset}-download-", dir=data_dir) as tmp:
        staging = Path(tmp)
        if dataset == "cifar10":
            _install_cifar(dataset, data_dir, folder, staging, mirror, listener)
            return
        names = {f"{m}.gz" for m in missing}
        todo = [s for s in sources(dataset, mirror) if s.filename in names]
        fetched = [fetch(dataset, source, staging, listener) for source in todo]
        target = data_dir / folder
        target.mkdir(parents=True, exist_ok=True)
        for path in fetched:  # every file verified before any is installed
            path.replace(target / path.name)


def _install_cifar(
    dataset: str, data_dir: Path, folder: str, staging: Path, mirror: str | None, listener: DownloadListener | None
) -> None:
    from torchvision.datasets.utils import extract_archive

    archive = fetch(dataset, sources(dataset, mirror)[0], staging, listener)
    extract_archive(str(archive), str(staging / "extracted"))
    target = data_dir / folder
    if target.exists():
        shutil.rmtree(target)  # an incomplete folder (a file was missing): replaced whole
    (staging / "extracted" / folder).replace(target)


def fetch(dataset: str, source: Source, staging: Path, listener: DownloadListener | None) -> Path:
    """Download `source` into `staging`, trying each address in turn; the verified file's path."""
    errors = []
    for url in source.urls:
        try:
            return _fetch_one(dataset, source, url, staging / source.filename, listener)
        except (httpx.HTTPError, DatasetUnavailable, OSError) as exc:
            errors.append(exc.detail if isinstance(exc, DatasetUnavailable) else f"{url}: {type(exc).__name__}: {exc}")
            (staging / source.filename).unlink(missing_ok=True)
    raise DatasetUnavailable(f"downloading {dataset!r} failed; nothing was kept: {'; '.join(errors)}")


def _fetch_one(dataset: str, source: Source, url: str, path: Path, listener: DownloadListener | None) -> Path:
    digest = hashlib.md5(usedforsecurity=False)
    done, last_report = 0, 0.0
    with httpx.stream("GET", url, timeout=TIMEOUT, follow_redirects=True) as response:
        response.raise_for_status()
        length = response.headers.get("content-length")
        total = int(length) if length and length.isdigit() else None
        with path.open("wb") as out:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if listener is not None and time.monotonic() - last_report >= REPORT_SECONDS:
                    last_report = time.monotonic()
                    listener(DownloadProgress(dataset, source.filename, url, done, total))
    if digest.hexdigest() != source.md5:
        raise DatasetUnavailable(
            f"{url}: checksum mismatch for {source.filename} (md5 {digest.hexdigest()}, expected {source.md5}, "
            f"{done} bytes): a corrupt or truncated download"
        )
    if listener is not None:
        listener(DownloadProgress(dataset, source.filename, url, done, total, verified=True))
    return path
