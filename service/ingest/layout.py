"""The ImageFolder layout of an archive: class folders at the top, or `train/` and `val/` (or `test/`) holding them.

One folder around everything (as zipping a folder makes) is looked through; operating-system litter
(`__MACOSX/`, `.DS_Store`, `._*`, `Thumbs.db`) is skipped. Any other file must be an image inside a class folder.
"""

from dataclasses import dataclass

from service.errors import InvalidInput
from service.ingest.images import image_format

SPLITS = {"train": "train", "val": "test", "validation": "test", "test": "test"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar", ".zst")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!")


@dataclass(frozen=True)
class Layout:
    """How the archive's paths map to splits and classes."""

    prefix: str  # the folder around everything ("" when none), with its trailing slash
    given_split: bool  # train/ and val/ (or test/) at the top

    def place(self, path: str) -> tuple[str | None, str]:
        """(split or None when none is given, class) of a file at `path`."""
        parts = path.removeprefix(self.prefix).split("/")
        if self.given_split:
            if len(parts) < 3:
                raise InvalidInput(f"archive: {path} is not inside a class folder of {parts[0]}/")
            return SPLITS[parts[0]], parts[1]
        if len(parts) < 2:
            raise InvalidInput(f"archive: {path} is not inside a class folder")
        return None, parts[0]

    def class_folder(self, path: str) -> str | None:
        """The class a folder entry at `path` is (or lies in), or None for a split folder or the prefix."""
        parts = [p for p in path.removeprefix(self.prefix).split("/") if p]
        depth = 1 if self.given_split else 0
        return parts[depth] if len(parts) > depth else None


def is_litter(path: str) -> bool:
    """Files an operating system adds to archives, which are not part of a dataset."""
    name = path.rsplit("/", 1)[-1]
    return (
        path.startswith("__MACOSX/")
        or "/__MACOSX/" in path
        or name in {".DS_Store", "Thumbs.db"}
        or (name.startswith("._"))
    )


def _wrapper(files: list[str], folders: list[str], prefix: str) -> str | None:
    """The one folder around everything below `prefix` that is neither a split nor a class folder, if any."""
    rest = [f.removeprefix(prefix) for f in files]
    inner = [d.removeprefix(prefix) for d in folders if d.startswith(prefix)]
    tops = {p.split("/", 1)[0] for p in rest} | {d.split("/", 1)[0] for d in inner}
    if len(tops) != 1 or any(p.count("/") < 2 for p in rest):
        return None  # several tops, or a file that would land at the top once it is looked through
    top = next(iter(tops))
    return None if top in SPLITS else top


def find_layout(files: list[str], folders: list[str]) -> Layout:
    """The layout of an archive whose (non-litter) files and folders are at these paths."""
    prefix = ""
    while files and (top := _wrapper(files, folders, prefix)) is not None:
        prefix += f"{top}/"
    folders = [d for d in folders if d.startswith(prefix)]
    tops = {p.removeprefix(prefix).split("/", 1)[0] for p in files}
    tops |= {d.removeprefix(prefix).split("/", 1)[0] for d in folders}
    given = "train" in tops and tops <= set(SPLITS)
    if given and len(tops) != 2:
        raise InvalidInput("archive: train/ needs exactly one held-out folder beside it: val/, validation/ or test/")
    return Layout(prefix, given)


def refuse_non_image(path: str, data: bytes) -> None:
    """InvalidInput naming `path` when it is a nested archive or any other file that is not an image."""
    if image_format(path) is not None:
        return  # whether it is the image its name says is for the decoder to tell
    if path.lower().endswith(ARCHIVE_SUFFIXES) or data.startswith(ARCHIVE_MAGIC) or data[257:262] == b"ustar":
        raise InvalidInput(f"archive: {path} is a nested archive; upload images in class folders")
    raise InvalidInput(f"archive: {path} is not an image (png, jpg, jpeg, bmp, webp)")
