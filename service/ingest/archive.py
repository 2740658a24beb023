"""The members of an uploaded zip or tar(.gz, .bz2, .xz), read one at a time and checked before they are trusted.

Nothing is ever extracted to disk: each regular file is read into memory up to `max_file_bytes` (checked while
it inflates, since a declared size can lie), and the running total against `max_total_bytes` and the archive's
own size times `max_ratio` (a zip bomb). Names are checked as written (no absolute paths, no `..`, no
backslashes); links, devices and other special members are refused, as tarfile's `data` filter would.
"""

import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from service.config import UploadSettings
from service.errors import InvalidInput, PayloadTooLarge

CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One archive entry: its checked path, and its bytes (None for a folder)."""

    path: str
    data: bytes | None


class _Budget:
    """The archive's limits, counted as members are read."""

    def __init__(self, limits: UploadSettings, archive_bytes: int) -> None:
        self.limits = limits
        self.entries = 0
        self.total = 0
        self.max_total = min(limits.max_total_bytes, int(max(archive_bytes, 1) * limits.max_ratio))

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_files:
            raise PayloadTooLarge(f"archive: more than {self.limits.max_files} entries (CONVLAB_DATASET_MAX_FILES)")

    def read(self, name: str, stream: IO[bytes]) -> bytes:
        """The member's bytes, refused once they pass the per-file or the archive's total limits."""
        parts: list[bytes] = []
        size = 0
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            self.total += len(chunk)
            if size > self.limits.max_file_bytes:
                raise PayloadTooLarge(
                    f"archive: {name} inflates past {self.limits.max_file_bytes} bytes "
                    "(CONVLAB_DATASET_MAX_FILE_BYTES): a zip bomb?"
                )
            self._check_total()
            parts.append(chunk)
        return b"".join(parts)

    def declare(self, name: str, size: int) -> None:
        """Refuse a member whose declared size is already past the limits."""
        if size > self.limits.max_file_bytes:
            raise PayloadTooLarge(
                f"archive: {name} declares {size} bytes, over {self.limits.max_file_bytes} "
                "(CONVLAB_DATASET_MAX_FILE_BYTES)"
            )

    def declare_total(self, size: int) -> None:
        """Refuse an archive whose declared sizes add up past the limits, before anything is inflated."""
        self.total += size
        try:
            self._check_total()
        finally:
            self.total -= size

    def _check_total(self) -> None:
        if self.total > self.limits.max_total_bytes:
            raise PayloadTooLarge(
                f"archive: more than {self.limits.max_total_bytes} bytes uncompressed (CONVLAB_DATASET_MAX_TOTAL_BYTES)"
            )
        if self.total > self.max_total:
            raise PayloadTooLarge(
                f"archive: inflates more than {self.limits.max_ratio:g} times its size "
                "(CONVLAB_DATASET_MAX_RATIO): a zip bomb?"
            )


def checked_path(name: str) -> str:
    """`name` as a relative POSIX path; InvalidInput for absolute paths, `..`, backslashes or control characters."""
    if not name or "\\" in name or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"archive: entry {name!r} has a name with a backslash or a control character")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InvalidInput(f"archive: entry {name!r} is an absolute path")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise InvalidInput(f"archive: entry {name!r} climbs out of the archive (path traversal)")
    if not parts:
        raise InvalidInput(f"archive: entry {name!r} has an empty name")
    return "/".join(parts)


def _zip_members(path: Path, budget: _Budget) -> Iterator[Member]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():  # declared sizes first: a bomb is refused before anything inflates
            budget.declare(info.filename, info.file_size)
        budget.declare_total(sum(info.file_size for info in archive.infolist()))
        for info in archive.infolist():
            budget.count_entry()
            name = checked_path(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidInput(f"archive: entry {name!r} is a symbolic link")
            if info.is_dir():
                yield Member(name, None)
                continue
            budget.declare(name, info.file_size)
            with archive.open(info) as stream:
                yield Member(name, budget.read(name, stream))


def _tar_members(path: Path, budget: _Budget) -> Iterator[Member]:
    with tarfile.open(path, "r:*") as archive:
        for info in archive:
            budget.count_entry()
            name = checked_path(info.name)
            if info.isdir():
                yield Member(name, None)
                continue
            if not info.isfile():
                kind = "a link" if info.issym() or info.islnk() else "a special file"
                raise InvalidInput(f"archive: entry {name!r} is {kind}; only files and folders are allowed")
            budget.declare(name, info.size)
            stream = archive.extractfile(info)
            if stream is None:
                raise InvalidInput(f"archive: entry {name!r} cannot be read")
            yield Member(name, budget.read(name, stream))


def read_members(path: Path, limits: UploadSettings) -> Iterator[Member]:
    """Every entry of the archive at `path`, in archive order; a 4xx naming the reason for anything hostile."""
    budget = _Budget(limits, path.stat().st_size)
    if zipfile.is_zipfile(path):
        members = _zip_members(path, budget)
    elif _is_tar(path):
        members = _tar_members(path, budget)
    else:
        raise InvalidInput("archive: not a zip or tar archive (tar may be gzip, bzip2 or xz compressed), or truncated")
    try:
        yield from members
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise InvalidInput(f"archive: truncated or damaged ({exc})") from None


def _is_tar(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:*") as archive:
            archive.next()
    except (tarfile.TarError, zlib.error, EOFError, OSError):
        return False
    return True
