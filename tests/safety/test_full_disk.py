"""A full disk: the SQLite database on a small tmpfs that a job's checkpoints fill. The job ends failed saying so,
the API keeps answering reads, /health says what is wrong, the file stays intact, and once space is freed new jobs
run and the failed one can be re-run. Needs root (mount); skipped, with the reason, where mounting is refused."""

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import QueueSettings
from service.main import create_app
from service.storage.db import upgrade_database
from service.worker import run_worker
from tests.api.conftest import make_settings

DISK_BYTES = 4 * 2**20
LEFT_FREE = 1_200_000  # about six BN-LeNet checkpoints: the job below needs forty
# Forty epochs of four steps, every checkpoint kept: its checkpoints outgrow what is left of the disk.
GREEDY = {
    "architecture": "bn_lenet",
    "dataset": "synthetic",
    "epochs": 40,
    "batch_size": 32,
    "train_subset": 128,
    "test_subset": 64,
    "keep_checkpoints": 40,
}
TINY = {**GREEDY, "epochs": 1, "keep_checkpoints": 1}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_job_saying_so_and_the_service_recovers(
    small_disk: Path, tmp_path: Path, data_dir: Path
) -> None:
    database = small_disk / "convlab.db"
    url = f"sqlite:///{database}"
    upgrade_database(url)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, _free(small_disk) - LEFT_FREE))
    settings = make_settings(tmp_path, data_dir, database_url=url, queue=QueueSettings(poll_seconds=0.1))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        greedy = client.post("/jobs", json=GREEDY).json()["id"]
        run_worker(settings, burst=True)
        job = client.get(f"/jobs/{greedy}").json()  # reads keep working on the full disk
        assert job["status"] == "failed" and "database or disk is full" in job["error"], job
        assert "the database's disk is full" in client.get(f"/jobs/{greedy}/events").text
        assert 0 < job["epoch"] < GREEDY["epochs"]
        assert client.get(f"/jobs/{greedy}/history").status_code == 200
        health = client.get("/health")
        assert health.status_code == 503 and "disk nearly full" in health.json()["database_error"]
        assert client.get("/health/ready").status_code == 200  # reads are served
        assert _integrity(database) == "ok"
        filler.unlink()  # the operator frees space
        assert client.get("/health").status_code == 200
        tiny = client.post("/jobs", json=TINY).json()["id"]
        rerun = client.post(f"/jobs/{greedy}/clone", json={"overrides": {"epochs": 2, "keep_checkpoints": 1}})
        assert rerun.status_code == 201, rerun.text
        run_worker(settings, burst=True)
        assert client.get(f"/jobs/{tiny}").json()["status"] == "succeeded"
        assert client.get(f"/jobs/{rerun.json()['id']}").json()["status"] == "succeeded"
    assert _integrity(database) == "ok"


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _integrity(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        verdict = str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    connection.close()
    return verdict
