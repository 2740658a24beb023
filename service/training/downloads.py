"""Datasets on first use: fetch a dataset's files and verify each against its recorded checksum.

The torchvision datasets come with torchvision's own list (file names, upstream mirrors, md5 sums); the
airfoil file of the optimization lab has its upstream address and sha256 recorded here. Each file streams into
a temporary directory under the data directory and is moved into place only once its checksum matches, so a
corrupt or truncated download leaves nothing a later job would trust. A file lock under the data directory makes
concurrent workers (processes or hosts sharing the directory) download a dataset once: the others wait, then
find the files.

A mirror (`CONVLAB_DATASET_MIRROR`) has the data directory's own layout: `FashionMNIST/raw/<file>`,
`MNIST/raw/<file>`, `airfoil/<file>`, and CIFAR-10's archive `cifar-10-python.tar.gz` at its root (where
torchvision's own download leaves it, and where convlab keeps it too), so any data directory served over HTTP
(`python -m http.server` in it) is a mirror.
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


# The optimization lab's airfoil file (d2l's optimization chapter): the LF copy in a public d2l port, at a fixed
# commit, the same numbers as the CRLF copy the book's data hub serves; sha256 recorded here (sha1 d9dfd00e...0801c).
AIRFOIL_FILE = "airfoil_self_noise.dat"
AIRFOIL_URL = (
    "https://raw.githubusercontent.com/ShusenTang/Dive-into-DL-PyTorch/"
    "78b366f8020725f14a533ff1804aaf890dacc14e/data/airfoil_self_noise.dat"
)
AIRFOIL_SHA256 = "10ee06e6cfb27dae6b44213d421d217012fb1f9b697592e73a4e4016b52d425f"


@dataclass(frozen=True)
class Source:
    """One file to fetch: its name, its checksum (`algorithm`: md5 or sha256) and the addresses to try in order."""

    filename: str
    checksum: str
    urls: tuple[str, ...]
    algorithm: str = "md5"

    def matches(self, path: Path) -> bool:
        """Whether the file at `path` exists and has this source's checksum."""
        if not path.is_file():
            return False
        with path.open("rb") as stream:
            digest = hashlib.file_digest(stream, lambda: hashlib.new(self.algorithm, usedforsecurity=False))
        return digest.hexdigest() == self.checksum


def sources(dataset: str, folder: str, mirror: str | None) -> list[Source]:
    """The files of `dataset` (kept under `folder` of a data directory), from upstream or from `mirror`.

    `mirror` is a base URL with the data directory's layout: a file of `folder` is at `<mirror>/<folder>/<file>`.
    """
    import torchvision.datasets as tvd

    def urls(filename: str, upstream: list[str]) -> tuple[str, ...]:
        if mirror:
            return ("/".join(part for part in (mirror.rstrip("/"), folder, filename) if part),)
        return tuple(base + filename for base in upstream)

    if dataset == "airfoil":
        upstream = AIRFOIL_URL.removesuffix(AIRFOIL_FILE)
        return [Source(AIRFOIL_FILE, AIRFOIL_SHA256, urls(AIRFOIL_FILE, [upstream]), "sha256")]
    if dataset == "cifar10":  # the archive, in the folder above the extracted batches
        folder = str(Path(folder).parent).removeprefix(".")
        upstream = tvd.CIFAR10.url.rsplit("/", 1)[0] + "/"
        return [Source(tvd.CIFAR10.filename, tvd.CIFAR10.tgz_md5, urls(tvd.CIFAR10.filename, [upstream]))]
    cls = {"fashion_mnist": tvd.FashionMNIST, "mnist": tvd.MNIST}[dataset]
    return [Source(name, md5, urls(name, cls.mirrors)) for name, md5 in cls.resources]


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
        names = set(missing) | {f"{m}.gz" for m in missing}  # the MNIST readers accept files with or without .gz
        todo = [s for s in sources(dataset, folder, mirror) if s.filename in names]
        fetched = [fetch(dataset, source, staging, listener) for source in todo]
        target = data_dir / folder
        target.mkdir(parents=True, exist_ok=True)
        for path in fetched:  # every file verified before any is installed
            path.replace(target / path.name)


def _install_cifar(
    dataset: str, data_dir: Path, folder: str, staging: Path, mirror: str | None, listener: DownloadListener | None
) -> None:
    from torchvision.datasets.utils import extract_archive

    archive = fetch(dataset, sources(dataset, folder, mirror)[0], staging, listener)
    extract_archive(str(archive), str(staging / "extracted"))
    target = data_dir / folder
    if target.exists():
        shutil.rmtree(target)  # an incomplete folder (a file was missing): replaced whole
    (staging / "extracted" / folder).replace(target)
    archive.replace(data_dir / archive.name)  # kept where torchvision keeps it: this data directory is a mirror too


def fetch(dataset: str, source: Source, staging: Path, listener: DownloadListener | None) -> Path:
    """Download `source` into `staging`, trying each address in turn; the verified file's path.

    DatasetUnavailable names every address tried and why it failed (with both checksums on a mismatch).
    """
    errors = []
    for url in source.urls:
        try:
            return _fetch_one(dataset, source, url, staging / source.filename, listener)
        except (httpx.HTTPError, DatasetUnavailable, OSError) as exc:
            errors.append(exc.detail if isinstance(exc, DatasetUnavailable) else f"{url}: {type(exc).__name__}: {exc}")
            (staging / source.filename).unlink(missing_ok=True)
    raise DatasetUnavailable(f"downloading {dataset!r} failed; nothing was kept: {'; '.join(errors)}")


def _fetch_one(dataset: str, source: Source, url: str, path: Path, listener: DownloadListener | None) -> Path:
    digest = hashlib.new(source.algorithm, usedforsecurity=False)
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
    if digest.hexdigest() != source.checksum:
        raise DatasetUnavailable(
            f"{url}: checksum mismatch for {source.filename} ({source.algorithm} {digest.hexdigest()}, expected "
            f"{source.checksum}, {done} bytes): a corrupt or truncated download"
        )
    if listener is not None:
        listener(DownloadProgress(dataset, source.filename, url, done, total, verified=True))
    return path
