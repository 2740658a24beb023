"""`make test-data`: the suite's real data fetched once, verified, into a cache, only where no data folder is given.

The Makefile runs in a scratch copy of the repository's top (Makefile, pyproject.toml) so that "../shared" can be
present or absent at will; its `install` step is satisfied by marker files and BIN is this interpreter's, so
nothing is installed. The data come from a local HTTP server of the shared data directory (a mirror has the data
directory's layout), never from the internet.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.training.downloads import AIRFOIL_SHA256
from tests.conftest import REPO_ROOT
from tests.mirror import serve_directory

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SUITE_FILES = [
    *(f"FashionMNIST/raw/{name}" for name in FILES),
    *(f"MNIST/raw/{name}" for name in FILES),
    "airfoil/airfoil_self_noise.dat",
]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def checkout(tmp_path: Path) -> Path:
    """A scratch repository top at tmp_path/work/convlab, with installed-looking markers in its own VENV."""
    top = tmp_path / "work" / "convlab"
    top.mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, top / name)
    venv = top / "venv"
    venv.mkdir()
    for marker in (".torch-installed", ".convlab-installed"):  # newer than pyproject.toml: `install` is done
        (venv / marker).touch()
    return top


def make(top: Path, target: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`make TARGET` in `top` with this interpreter as BIN and the checkout's code importable; no CONVLAB_* set."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONVLAB_")}
    environment.update(PYTHONPATH=str(REPO_ROOT), **env)
    bin_dir = str(Path(sys.executable).parent)
    command = ["make", "--no-print-directory", target, f"VENV={top / 'venv'}", f"BIN={bin_dir}", *args]
    return subprocess.run(command, cwd=top, env=environment, capture_output=True, text=True, timeout=300, check=False)


def test_without_a_data_folder_the_data_step_fetches_once_refetches_a_corrupt_file_then_fetches_nothing(
    tmp_path, data_dir
):
    top = checkout(tmp_path)
    cache = top / ".convlab" / "test-data"
    with serve_directory(data_dir) as mirror:
        first = make(top, "test-data", CONVLAB_DATASET_MIRROR=mirror.url)
        assert first.returncode == 0, first.stdout + first.stderr
        assert mirror.requests == dict.fromkeys(SUITE_FILES, 1)
        assert all(md5(cache / name) == md5(data_dir / name) for name in SUITE_FILES)
        assert f"fetching FashionMNIST/raw/{FILES[0]}: 26.4 MB of 26.4 MB from {mirror.url}" in first.stdout
        assert "airfoil_self_noise.dat: 58.5 kB of 58.5 kB" in first.stdout and "checksum verified" in first.stdout

        victim = cache / "MNIST" / "raw" / FILES[3]
        victim.write_bytes(victim.read_bytes()[:-4] + b"\x00" * 4)  # same size, different bytes
        second = make(top, "test-data", CONVLAB_DATASET_MIRROR=mirror.url)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"MNIST/raw/{FILES[3]}: present but its checksum differs: refused, fetching it again" in second.stdout
        assert mirror.requests == {**dict.fromkeys(SUITE_FILES, 1), f"MNIST/raw/{FILES[3]}": 2}
        assert md5(victim) == md5(data_dir / "MNIST" / "raw" / FILES[3])

        third = make(top, "test-data", CONVLAB_DATASET_MIRROR=mirror.url)
        assert third.returncode == 0, third.stdout + third.stderr
        assert sum(mirror.requests.values()) == len(SUITE_FILES) + 1  # nothing fetched
        assert "fetching" not in third.stdout and third.stdout.count(", 0 fetched") == 3
    planned = make(top, "test", "-n").stdout  # the suite then reads the cache, with downloads off
    assert f"CONVLAB_DATA_DIR={cache} CONVLAB_ALLOW_DOWNLOAD=false" in planned


@pytest.mark.parametrize("given", ["sibling folder", "CONVLAB_DATA_DIR"])
def test_with_a_data_folder_the_data_step_fetches_nothing(tmp_path, data_dir, given):
    top = checkout(tmp_path)
    env = {}
    if given == "sibling folder":
        (tmp_path / "work" / "shared").mkdir()
        (tmp_path / "work" / "shared" / "datasets").symlink_to(data_dir)
        expected = tmp_path / "work" / "shared" / "datasets"
    else:
        env["CONVLAB_DATA_DIR"] = str(expected := data_dir)
    with serve_directory(data_dir) as mirror:
        done = make(top, "test-data", CONVLAB_DATASET_MIRROR=mirror.url, **env)
        planned = make(top, "test", "-n", **env).stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"test data: {expected} (nothing to fetch)\n"
    assert mirror.requests == {} and not (top / ".convlab").exists()
    assert f"CONVLAB_DATA_DIR={expected} CONVLAB_ALLOW_DOWNLOAD=false" in planned


def test_a_damaged_file_from_the_mirror_is_refused_naming_its_url_and_checksums(tmp_path, data_dir):
    served = tmp_path / "mirror" / "airfoil"
    served.mkdir(parents=True)
    (served / "airfoil_self_noise.dat").write_bytes((data_dir / "airfoil" / "airfoil_self_noise.dat").read_bytes()[:-9])
    target = tmp_path / "data"
    with serve_directory(tmp_path / "mirror") as mirror:
        done = subprocess.run(
            [sys.executable, "-m", "service.training.prefetch", str(target), "airfoil", "--mirror", mirror.url],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1
    url = f"{mirror.url}airfoil/airfoil_self_noise.dat"
    assert f"{url}: checksum mismatch for airfoil_self_noise.dat (sha256 " in done.stderr
    assert f"expected {AIRFOIL_SHA256}, 58472 bytes): a corrupt or truncated download" in done.stderr
    assert not (target / "airfoil").exists()  # nothing was installed
