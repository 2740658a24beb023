"""Datasets on first use, from a local mirror: the shared data directory served as it is (never the internet)."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings, variable_names
from service.errors import DatasetUnavailable
from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.storage.db import make_engine, make_session_factory, upgrade_database
from service.storage.orm import JobEvent
from service.training import Callbacks, DownloadProgress, fit, load_dataset
from service.training.downloads import AIRFOIL_SHA256, AIRFOIL_URL, sources
from tests.mirror import serve_directory
from tests.queue.processes import start_worker, submit, wait_for_status, worker_env

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FASHION = [f"FashionMNIST/raw/{name}" for name in FILES]
SPEC = JobRequest(architecture="bn_lenet", epochs=1, batch_size=64, train_subset=256, test_subset=128).resolve()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class Downloads(Callbacks):
    def __init__(self) -> None:
        self.seen: list[DownloadProgress] = []

    def on_download(self, progress: DownloadProgress) -> None:
        self.seen.append(progress)


def test_fit_downloads_fashion_mnist_from_the_mirror_once_then_trains(tmp_path, data_dir):
    data = tmp_path / "data"
    callbacks = Downloads()
    with serve_directory(data_dir) as mirror:
        result = fit(SPEC, data_dir=data, allow_download=True, dataset_mirror=mirror.url, callbacks=callbacks)
        load_dataset("fashion_mnist", data, allow_download=True, mirror=mirror.url)  # present now: no request
    assert result.status == "completed" and result.final_metrics is not None
    assert mirror.requests == dict.fromkeys(FASHION, 1)
    for name in FILES:
        assert md5(data / "FashionMNIST" / "raw" / name) == md5(data_dir / "FashionMNIST" / "raw" / name)
    verified = [p.file for p in callbacks.seen if p.verified]
    assert verified == list(FILES)
    assert all(p.url.startswith(mirror.url) for p in callbacks.seen)
    assert [p.name for p in data.iterdir() if not p.name.endswith(".lock")] == ["FashionMNIST"]  # no staging


def test_one_mirror_serves_fashion_mnist_and_mnist_whose_files_share_names(tmp_path, data_dir):
    data = tmp_path / "data"
    with serve_directory(data_dir) as mirror:
        fashion = load_dataset("fashion_mnist", data, allow_download=True, mirror=mirror.url + "/", test_subset=8)
        digits = load_dataset("mnist", data, allow_download=True, mirror=mirror.url.rstrip("/"), test_subset=8)
    assert mirror.requests == dict.fromkeys([*FASHION, *(f"MNIST/raw/{name}" for name in FILES)], 1)
    for folder in ("FashionMNIST/raw", "MNIST/raw"):
        for name in FILES:
            assert md5(data / folder / name) == md5(data_dir / folder / name)
    assert fashion.checksum != digits.checksum
    assert fashion.checksum == load_dataset("fashion_mnist", data_dir, test_subset=8).checksum


def test_mirror_addresses_follow_the_data_directory_layout():
    mirror = "http://127.0.0.1:9/data/"
    assert sources("mnist", "MNIST/raw", mirror)[0].urls == (
        "http://127.0.0.1:9/data/MNIST/raw/train-images-idx3-ubyte.gz",
    )
    airfoil = sources("airfoil", "airfoil", mirror.rstrip("/"))
    assert airfoil[0].urls == ("http://127.0.0.1:9/data/airfoil/airfoil_self_noise.dat",)
    assert (airfoil[0].algorithm, airfoil[0].checksum) == ("sha256", AIRFOIL_SHA256)
    assert sources("airfoil", "airfoil", None)[0].urls == (AIRFOIL_URL,)
    # CIFAR-10's archive sits at the top, where torchvision's download (and convlab's) leaves it in a data directory
    assert sources("cifar10", "cifar-10-batches-py", mirror)[0].urls == (
        "http://127.0.0.1:9/data/cifar-10-python.tar.gz",
    )


def test_the_recorded_airfoil_checksum_is_the_shared_files(data_dir):
    assert hashlib.sha256((data_dir / "airfoil" / "airfoil_self_noise.dat").read_bytes()).hexdigest() == AIRFOIL_SHA256


def test_downloads_stay_off_unless_allowed(tmp_path):
    with pytest.raises(DatasetUnavailable, match="CONVLAB_ALLOW_DOWNLOAD=true"):
        load_dataset("fashion_mnist", tmp_path)


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_damaged_mirror_file_is_refused_and_nothing_is_kept(tmp_path, data_dir, damage):
    served = tmp_path / "mirror"
    shutil.copytree(data_dir / "FashionMNIST" / "raw", served / "FashionMNIST" / "raw")
    victim = served / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    content = victim.read_bytes()
    victim.write_bytes(content[: len(content) // 2] if damage == "truncated" else content[:-10] + b"\x00" * 10)
    data = tmp_path / "data"
    with serve_directory(served) as mirror, pytest.raises(DatasetUnavailable) as refused:
        load_dataset("fashion_mnist", data, allow_download=True, mirror=mirror.url)
    assert "checksum mismatch for t10k-images-idx3-ubyte.gz" in refused.value.detail
    assert "nothing was kept" in refused.value.detail
    assert not (data / "FashionMNIST").exists()  # the three good files were not installed either
    assert [p.name for p in data.iterdir()] == [".fashion_mnist.download.lock"]


def _database(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    upgrade_database(url)
    return url, make_session_factory(make_engine(url))


def _events(factory, job_id: int, kind: str) -> list[JobEvent]:
    with factory() as session:
        return list(session.query(JobEvent).filter_by(job_id=job_id, kind=kind).order_by(JobEvent.id))


def test_a_corrupt_download_fails_the_job_with_a_checksum_error(tmp_path, data_dir):
    served = tmp_path / "mirror"
    shutil.copytree(data_dir / "FashionMNIST" / "raw", served / "FashionMNIST" / "raw")
    (served / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the labels")
    url, factory = _database(tmp_path)
    job_id = submit(factory, SPEC)
    with serve_directory(served) as mirror:
        env = worker_env(url, tmp_path, tmp_path / "data", allow_download="true", dataset_mirror=mirror.url)
        worker = start_worker(env, tmp_path, "--burst")
        job = wait_for_status(factory, job_id, JobStatus.failed, JobStatus.succeeded)
        assert worker.wait(timeout=120) == 0
    assert job.status is JobStatus.failed
    assert "DatasetUnavailable" in (job.error or "") and "checksum mismatch for t10k-labels-idx1-ubyte.gz" in job.error
    verified = [e.payload["file"] for e in _events(factory, job_id, "download") if e.payload["verified"]]
    assert verified == list(FILES[:3])  # progress reached the job's events before the bad file
    assert not (tmp_path / "data" / "FashionMNIST").exists()


def test_two_jobs_needing_the_same_dataset_at_once_download_it_once(tmp_path, data_dir):
    url, factory = _database(tmp_path)
    first, second = submit(factory, SPEC), submit(factory, SPEC.model_copy(update={"seed": 1}))
    # slow answers (1 s per file) keep the first download going while the second worker claims its job
    with serve_directory(data_dir, delay_seconds=1.0) as mirror:
        env = worker_env(url, tmp_path, tmp_path / "data", allow_download="true", dataset_mirror=mirror.url)
        workers: list[subprocess.Popen[bytes]] = [start_worker(env, tmp_path, "--burst") for _ in range(2)]
        jobs = [wait_for_status(factory, job_id, JobStatus.succeeded, JobStatus.failed) for job_id in (first, second)]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
    assert [job.status for job in jobs] == [JobStatus.succeeded, JobStatus.succeeded], [job.error for job in jobs]
    assert mirror.requests == dict.fromkeys(FASHION, 1)
    downloads = _events(factory, first, "download") + _events(factory, second, "download")
    claimed = [
        e for job_id in (first, second) for e in _events(factory, job_id, "status") if e.payload["status"] == "running"
    ]
    assert len(claimed) == 2
    assert max(e.created_at for e in claimed) < max(e.created_at for e in downloads)  # they overlapped


def test_without_a_data_dir_datasets_live_under_the_state_dir(tmp_path, monkeypatch):
    for name in ("CONVLAB_DATA_DIR", "CONVLAB_STATE_DIR", "CONVLAB_DATASET_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().data_dir == Path(".convlab") / "datasets"
    assert Settings(state_dir=tmp_path).data_dir == tmp_path / "datasets"
    monkeypatch.setenv("CONVLAB_STATE_DIR", str(tmp_path / "state"))
    assert Settings().data_dir == tmp_path / "state" / "datasets"
    monkeypatch.setenv("CONVLAB_DATA_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("CONVLAB_DATASET_MIRROR", "http://127.0.0.1:9/datasets/")
    configured = Settings()
    assert configured.data_dir == tmp_path / "shared"
    assert configured.downloads.mirror == "http://127.0.0.1:9/datasets/"
    assert "CONVLAB_DATASET_MIRROR" in variable_names()
    monkeypatch.setenv("CONVLAB_DATASET_MIRROR", "ftp://elsewhere/")
    with pytest.raises(ValidationError, match="mirror"):
        Settings()
