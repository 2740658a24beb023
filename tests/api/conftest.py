"""Fixtures for the HTTP API tests: apps on temporary SQLite databases, clients that forbid 5xx answers,
and one job trained for real (BN-LeNet on a slice of Fashion-MNIST) by the real worker code."""

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.config import AccessSettings, AuthMode, JobLimits, ServingSettings, Settings
from service.main import create_app
from service.training.datasets import load_dataset
from service.worker import run_worker

# A tiny but real training run: 2 epochs so that two checkpoints exist.
SMALL_JOB = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 2,
    "batch_size": 256,
    "optimizer": {"name": "adam", "lr": 0.01},
    "train_subset": 8192,
    "test_subset": 1000,
    "seed": 0,
}


def _no_server_errors(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.request.method} {response.request.url} -> {response.status_code}"


def make_client(app) -> TestClient:
    """A TestClient whose every response is checked: no request in the suite may produce a 5xx."""
    client = TestClient(app, raise_server_exceptions=True)
    client.event_hooks["response"].append(_no_server_errors)
    return client


# Auth off and no rate limits unless a test asks: tests/api/test_security.py and its neighbours test those.
OPEN_ACCESS = AccessSettings(auth=AuthMode.off, predict_rate=0, lab_rate=0)


def make_settings(state_dir: Path, data_dir: Path, **overrides) -> Settings:
    # torch serves, not the default auto: auto's background exports would race the export tests' own (a first
    # GET /export that finds one stored) and spend seconds of CPU per app. tests/api/test_export.py tests auto.
    serving = ServingSettings(events_poll_seconds=0.05, inference_backend="torch")
    overrides.setdefault("access", OPEN_ACCESS)
    return Settings(state_dir=state_dir, data_dir=data_dir, serving=serving, **overrides)


@pytest.fixture
def settings(tmp_path: Path, data_path: Path) -> Settings:
    return make_settings(tmp_path, data_path, jobs=JobLimits(max_epochs=20, max_batch_size=1024))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def trained_settings(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Settings:
    """Settings of a database holding one finished, really trained job (id 1)."""
    settings = make_settings(tmp_path_factory.mktemp("trained"), data_dir)
    with make_client(create_app(settings)) as client:
        assert client.post("/jobs", json=SMALL_JOB).status_code == 201
    run_worker(settings, burst=True)
    return settings


@pytest.fixture
def trained(trained_settings: Settings) -> Iterator[TestClient]:
    """A client on the trained database; job 1 has succeeded with checkpoints for epochs 1 and 2."""
    with make_client(create_app(trained_settings)) as client:
        assert client.get("/jobs/1").json()["status"] == "succeeded"
        yield client


@pytest.fixture(scope="session")
def test_images(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 64 real Fashion-MNIST test images (uint8 [N, 28, 28]) and labels."""
    test = load_dataset("fashion_mnist", data_dir, train_subset=1, test_subset=64).test
    return test.images[:, 0].numpy(), test.labels.numpy()


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """Encode a uint8 array ([H, W] gray, [H, W, 3] RGB, [H, W, 4] RGBA) as an image file."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def fashion_client(trained_settings: Settings, tmp_path: Path, data_dir: Path) -> Iterator[TestClient]:
    """Auth off, on a copy of the trained job's database; model `fashion` has v1 (epoch 1) and v2 (epoch 2)."""
    from tests.api.test_export import copy_database  # a test module that imports this one

    copy_database(trained_settings, tmp_path)
    with make_client(create_app(make_settings(tmp_path, data_dir))) as client:
        assert client.post("/models", json={"name": "fashion"}).status_code == 201
        for epoch in (1, 2):
            assert client.post("/models/fashion/versions", json={"job_id": 1, "epoch": epoch}).status_code == 201
        yield client
