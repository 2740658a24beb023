"""Fixtures shared by the whole suite."""

import os
from pathlib import Path

import pytest

from tests import stale_writes

stale_writes.install()

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where `make test-data` puts the real datasets on a machine without the sibling data folder.
TEST_DATA_CACHE = REPO_ROOT / ".convlab" / "test-data"


def shared_datasets_dir() -> Path:
    """The real datasets: CONVLAB_DATA_DIR, else ../shared/datasets beside the repository, else the test-data cache."""
    configured = os.environ.get("CONVLAB_DATA_DIR")
    if configured:
        return Path(configured)
    sibling = REPO_ROOT.parent / "shared" / "datasets"
    return sibling if sibling.is_dir() else TEST_DATA_CACHE


@pytest.fixture(scope="session")
def data_path() -> Path:
    """Where the real datasets are, unchecked: for settings and servers that only pass the location on.

    A test that reads a dataset asks for `data_dir` instead, so only such tests depend on the data being there.
    """
    return shared_datasets_dir()


@pytest.fixture(scope="session")
def data_dir(data_path: Path) -> Path:
    """Directory of the real datasets in torchvision's layout; a test asking for it fails loudly if they are missing."""
    if not (data_path / "FashionMNIST" / "raw").is_dir():
        pytest.fail(
            f"real datasets not found at {data_path}: run `make test-data` (it fetches them into {TEST_DATA_CACHE}), "
            f"or set CONVLAB_DATA_DIR to a directory that has them"
        )
    return data_path
