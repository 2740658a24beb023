"""Uploaded datasets' calls of `Client`: push a folder (packed here) or an archive, list, read, sample, delete.

A folder is packed into a zip in a temporary file, then streamed from that file, so neither the archive nor the
images sit whole in memory; the server checks the layout and every image, and its `detail` names what it refuses.
"""

import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
from pydantic import Field

from service.api.wire.datasets import DatasetRead, DatasetSummary, DatasetVersionRead
from service.client.http import ClientError, Connection
from service.jobspec.spec import UPLOADED_NAME

CHUNK_BYTES = 1 << 20  # what one read of the archive sends; the progress callback runs once per chunk
UPLOAD_READ_SECONDS = 600.0  # the server ingests the whole archive before it answers
STORED = frozenset({".png", ".jpg", ".jpeg", ".webp"})  # compressed already: stored as is, deflate gains nothing
Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)


class DatasetPush(DatasetVersionRead):
    """What `push_dataset` answers: the version, and whether this upload made it."""

    created: bool = Field(description="False when the same images were stored under the name before: that version.")


def is_hidden(path: Path) -> bool:
    """Dotfiles and dot-folders (`.DS_Store`, `.git/`, `._x.png`), left out of a packed folder."""
    return any(part.startswith(".") for part in path.parts)


def dataset_files(folder: Path) -> list[Path]:
    """The files a packed `folder` holds, relative to it, in order; ClientError when it has no class folder."""
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    files = [p for p in files if not is_hidden(p)]
    if not any(len(p.parts) >= 2 for p in files):
        raise ClientError(422, f"{folder}: no class folders with images (DIR/CLASS/IMAGE or DIR/train/CLASS/IMAGE)")
    return files


def pack_folder(folder: Path, out: IO[bytes]) -> int:
    """Write `folder` (an ImageFolder layout) to `out` as a zip; return how many files it holds."""
    files = dataset_files(folder)
    with zipfile.ZipFile(out, "w", strict_timestamps=False) as archive:
        for path in files:
            method = zipfile.ZIP_STORED if path.suffix.lower() in STORED else zipfile.ZIP_DEFLATED
            archive.write(folder / path, path.as_posix(), compress_type=method)
    return len(files)


@contextmanager
def archive_of(path: Path) -> Iterator[Path]:
    """`path` itself when it is a file (an archive, sent as is), else a zip of the folder, removed afterwards."""
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    with tempfile.NamedTemporaryFile(prefix="convlab-dataset-", suffix=".zip") as packed:
        pack_folder(path, packed)
        packed.flush()
        yield Path(packed.name)


def chunks(archive: Path, progress: Progress | None) -> Iterator[bytes]:
    """The archive's bytes, read a chunk at a time, telling `progress` after each."""
    total, sent = archive.stat().st_size, 0
    with archive.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
            sent += len(chunk)
            if progress is not None:
                progress(sent, total)


class DatasetCalls(Connection):
    """Uploaded datasets, each name a series of immutable versions (`name@v`)."""

    def push_dataset(
        self,
        path: str | Path,
        *,
        name: str,
        size: int | None = None,
        val_fraction: float | None = None,
        seed: int | None = None,
        progress: Progress | None = None,
    ) -> DatasetPush:
        """Upload a folder (class folders, or train/ and val/ or test/ holding them) or a zip or tar of one as the
        next version of `name`; `progress(sent, total)` follows the upload. The same images again: that version."""
        if UPLOADED_NAME.fullmatch(name) is None:  # checked here too, before a folder is packed for nothing
            raise ClientError(422, f"name: {name!r} is not a dataset name (lowercase letters, digits, '_', '.', '-')")
        given = {"size": size, "val_fraction": val_fraction, "seed": seed}
        params: dict[str, Any] = {"name": name} | {key: value for key, value in given.items() if value is not None}
        with archive_of(Path(path)) as archive:
            headers = {"Content-Length": str(archive.stat().st_size), "Content-Type": "application/octet-stream"}
            timeout = httpx.Timeout(self._http.timeout.connect, read=UPLOAD_READ_SECONDS)
            response = self.request(
                "POST", "/datasets", params=params, content=chunks(archive, progress), headers=headers, timeout=timeout
            )
        return DatasetPush.model_validate({**response.json(), "created": response.status_code == 201})

    def datasets(self) -> list[DatasetSummary]:
        """Every uploaded dataset: its name, version numbers and latest ref."""
        return self._get_list(DatasetSummary, "/datasets")

    def dataset(self, name: str) -> DatasetRead:
        """Every version of `name`, oldest first."""
        return self._get(DatasetRead, f"/datasets/{name}")

    def dataset_version(self, name: str, version: int) -> DatasetVersionRead:
        """One version: classes, counts per class and split, size, channels, mean/std, sha256, owner."""
        return self._get(DatasetVersionRead, f"/datasets/{name}/versions/{version}")

    def dataset_samples(self, name: str, version: int, *, per_class: int = 8) -> bytes:
        """A PNG grid of the first training images of each class, one row per class."""
        path = f"/datasets/{name}/versions/{version}/samples.png"
        return self.request("GET", path, params={"per_class": per_class}).content

    def delete_dataset(self, name: str, version: int) -> None:
        """Delete a version no job or sweep uses (409 naming them otherwise)."""
        self.request("DELETE", f"/datasets/{name}/versions/{version}")
