"""`python -m service.training.prefetch DIR [DATASET ...]`: verified datasets in a data directory ahead of use.

`make test-data` runs it to give the suite its real data on a machine without the sibling data folder; an operator
can fill a server's data directory with it. Every file already there is checked against its checksum (md5 for
torchvision's files, sha256 for the airfoil file); the missing or different ones are fetched through the
downloader (staged, verified, then installed; from `CONVLAB_DATASET_MIRROR` or `--mirror` when set, else
upstream), so a second run fetches nothing. Exit status 1, with the downloader's message (each URL tried and, on a
mismatch, both checksums), when a file cannot be had.
"""

import argparse
import sys
from pathlib import Path
from typing import TextIO

from service.config import DownloadSettings
from service.errors import DatasetUnavailable
from service.training.downloads import download_dataset, sources
from service.training.records import DownloadProgress

# The datasets prefetched by default: the ones the test suite reads (CIFAR-10 is never needed there).
SUITE_DATASETS = ("fashion_mnist", "mnist", "airfoil")


def dataset_folder(dataset: str) -> str:
    """Where `dataset`'s files live under a data directory (and under a mirror)."""
    if dataset == "airfoil":
        return "airfoil"  # the optimization lab reads it there (optlab/linreg.py AIRFOIL_FILE)
    from service.training.datasets import get_dataset_info

    return str(get_dataset_info(dataset).folder)


class ProgressLine:
    """A file's progress: one line rewritten in place on a terminal, a line per report elsewhere (CI logs)."""

    def __init__(self, out: TextIO, folder: str) -> None:
        self.out, self.folder = out, folder
        self.terminal = out.isatty()

    def __call__(self, progress: DownloadProgress) -> None:
        size = _size(progress.bytes_done)
        if progress.total_bytes is not None:
            size += f" of {_size(progress.total_bytes)}"
        line = f"fetching {self.folder}/{progress.file}: {size} from {progress.url}"
        if progress.verified:
            line += ": checksum verified"
        end = "\n" if progress.verified or not self.terminal else ""
        self.out.write(("\r" if self.terminal else "") + line + end)
        self.out.flush()


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


def prefetch(dataset: str, data_dir: Path, *, mirror: str | None, out: TextIO) -> list[str]:
    """Make every file of `dataset` under `data_dir` match its checksum; the names fetched ([] if none were)."""
    folder = dataset_folder(dataset)
    files = sources(dataset, folder, mirror)

    def unverified() -> list[str]:
        return [source.filename for source in files if not source.matches(data_dir / folder / source.filename)]

    todo = unverified()
    for name in todo:
        if (data_dir / folder / name).exists():
            out.write(f"{folder}/{name}: present but its checksum differs: refused, fetching it again\n")
    if todo:
        download_dataset(
            dataset, data_dir, folder, wanted=unverified, mirror=mirror, listener=ProgressLine(out, folder)
        )
    out.write(f"{dataset}: {len(files)} file(s) verified in {data_dir / folder}, {len(todo)} fetched\n")
    return todo


def main(argv: list[str] | None = None) -> int:
    """Prefetch the datasets named on the command line (by default the suite's); 1 with the reason on failure."""
    parser = argparse.ArgumentParser(prog="python -m service.training.prefetch", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="the data directory to fill (torchvision's layout)")
    parser.add_argument("datasets", nargs="*", default=list(SUITE_DATASETS), help=f"of {', '.join(SUITE_DATASETS)}")
    parser.add_argument("--mirror", help="a base URL with a data directory's layout (default: CONVLAB_DATASET_MIRROR)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.datasets) - set(SUITE_DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(SUITE_DATASETS)}")
    mirror = args.mirror or DownloadSettings().mirror
    try:
        for dataset in args.datasets:
            prefetch(dataset, args.data_dir, mirror=mirror, out=sys.stdout)
    except DatasetUnavailable as exc:
        print(f"prefetch failed: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
