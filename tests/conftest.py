"""Fixtures shared by the whole suite."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_datasets_dir() -> Path:
    """The real datasets: CONVLAB_DATA_DIR, or ../shared/datasets beside the repository."""
    configured = os.environ.get("CONVLAB_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Directory of the real datasets in torchvision's layout; the suite fails loudly if it is missing."""
    path = shared_datasets_dir()
    if not (path / "FashionMNIST" / "raw").is_dir():
        pytest.fail(f"real datasets not found at {path}: set CONVLAB_DATA_DIR to the shared datasets directory")
    return path
