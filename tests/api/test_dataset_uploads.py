"""POST /datasets with real images: ingestion, versions, the content address, reading, deleting, scopes, quotas."""

import io
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.access import Scope
from service.config import Settings, UploadSettings
from service.main import create_app
from service.training.datasets import decode_uploaded, load_dataset
from tests.api.archives import fashion_files, image_bytes, tar_bytes, zip_bytes
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import make_client, make_settings
from tests.committing import a_worker_committing

ZIP = {"Content-Type": "application/zip"}


@pytest.fixture(scope="module")
def files(data_dir: Path) -> dict[str, bytes]:
    """200 real Fashion-MNIST training images as PNG class folders."""
    return fashion_files(data_dir, train=200)


@pytest.fixture
def client(tmp_path: Path, data_dir: Path) -> Iterator[TestClient]:
    with make_client(create_app(make_settings(tmp_path, data_dir))) as client:
        yield client


def upload(client: TestClient, body: bytes, name: str = "fashion", **params: object):
    return client.post("/datasets", params={"name": name, **params}, content=body, headers=ZIP)


def test_upload_ingests_class_folders_faithfully(client: TestClient, files: dict[str, bytes], data_dir: Path):
    response = upload(client, zip_bytes(files), size=28)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["ref"], body["channels"], body["size"]) == ("fashion@1", 1, 28)
    assert response.headers["Location"] == "/datasets/fashion/versions/1"
    assert body["train_images"] + body["test_images"] == 200
    assert sum(c["train"] + c["test"] for c in body["counts"].values()) == 200
    with client.app.state.session_factory() as session:  # the stored tensors are exactly the real images
        from service.storage.datasets import get_version

        row = get_version(session, "fashion", 1, with_data=True)
        _, train, test = decode_uploaded("fashion@1", row.data)
    real = load_dataset("fashion_mnist", data_dir, train_subset=200, test_subset=1).train.images
    stored = sorted(bytes(x.numpy().tobytes()) for x in [*train.images, *test.images])
    assert stored == sorted(bytes(x.numpy().tobytes()) for x in real)
    assert body["mean"][0] == pytest.approx(float(train.images.float().mean() / 255), abs=1e-5)


def test_held_out_split_is_stratified_and_seeded(client: TestClient, files: dict[str, bytes]):
    first = upload(client, zip_bytes(files), val_fraction=0.25, seed=3).json()
    assert all(c["test"] == round((c["train"] + c["test"]) * 0.25) for c in first["counts"].values())
    assert first["split"] == "val_fraction=0.25 seed=3"
    other_seed = upload(client, zip_bytes(files), val_fraction=0.25, seed=4).json()
    assert other_seed["sha256"] != first["sha256"] and other_seed["version"] == 2


def test_same_images_in_other_archives_give_one_version(client: TestClient, files: dict[str, bytes]):
    first = upload(client, zip_bytes(files))
    assert first.status_code == 201
    shuffled = list(files)
    random.Random(1).shuffle(shuffled)
    again = [
        zip_bytes(files, order=shuffled, date=(2024, 6, 1, 12, 30, 0)),  # other order and timestamps
        tar_bytes(files, mode="w:gz", mtime=1e9),  # a tar.gz instead of a zip
        tar_bytes({f"my-folder/{k}": v for k, v in files.items()}, mode="w"),  # a folder around it, plain tar
    ]
    for body in again:
        response = upload(client, body)
        assert response.status_code == 200, response.text
        assert (response.json()["version"], response.json()["sha256"]) == (1, first.json()["sha256"])
    assert client.get("/datasets/fashion").json()["versions"][-1]["version"] == 1


def test_new_content_becomes_the_next_version(client: TestClient, files: dict[str, bytes]):
    assert upload(client, zip_bytes(files)).json()["version"] == 1
    fewer = dict(list(files.items())[:-1])
    second = upload(client, zip_bytes(fewer))
    assert second.status_code == 201 and second.json()["ref"] == "fashion@2"
    assert client.get("/datasets").json() == [{"name": "fashion", "versions": [1, 2], "latest": "fashion@2"}]


def test_given_train_and_val_folders_are_kept(client: TestClient, data_dir: Path):
    files = fashion_files(data_dir, train=100, test=40)
    renamed = {k.replace("test/", "val/", 1): v for k, v in files.items()}
    body = upload(client, tar_bytes(renamed), size=28).json()
    assert (body["split"], body["train_images"], body["test_images"]) == ("given", 100, 40)


def test_colour_and_gray_images_of_every_format_make_three_channels(client: TestClient, files: dict[str, bytes]):
    gray = list(files.values())[:4]
    colour = np.array(Image.open(io.BytesIO(gray[0])).convert("RGB"))
    colour[..., 0] = 255 - colour[..., 0]
    mixed = {
        "cats/a.png": gray[0],
        "cats/b.jpg": image_bytes(colour, "JPEG"),
        "cats/c.bmp": image_bytes(colour, "BMP"),
        "dogs/d.webp": image_bytes(colour, "WEBP"),
        "dogs/e.jpeg": image_bytes(np.array(Image.open(io.BytesIO(gray[1]))), "JPEG"),
        "dogs/f.png": image_bytes(np.zeros((50, 20, 3), np.uint8)),  # not square: padded, then resized
    }
    body = upload(client, zip_bytes(mixed), name="pets", size=16).json()
    assert (body["channels"], body["size"], body["classes"]) == (3, 16, ["cats", "dogs"])


def test_reading_a_version_and_its_sample_grid(client: TestClient, files: dict[str, bytes]):
    upload(client, zip_bytes(files))
    version = client.get("/datasets/fashion/versions/1").json()
    assert len(version["classes"]) == 10 and version["owner"] is not None
    grid = client.get("/datasets/fashion/versions/1/samples.png", params={"per_class": 4})
    assert grid.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(grid.content)).size == (120 + 4 * 64, 10 * 64)
    assert client.get("/datasets/nothing").status_code == 404
    assert client.get("/datasets/fashion/versions/9").status_code == 404


def test_delete_of_an_unused_version(client: TestClient, files: dict[str, bytes]):
    upload(client, zip_bytes(files))
    assert client.delete("/datasets/fashion/versions/1").status_code == 204
    assert client.get("/datasets").json() == []


def test_deletes_wait_for_a_committing_worker_instead_of_failing(client: TestClient, files: dict[str, bytes]):
    # SQLite cannot turn a read into a write once another connection has committed (the busy timeout does not
    # apply): a delete that reads first must take the write lock before its first read (docs/operations.md).
    few = dict(list(files.items())[:40])
    names = [f"d{i}" for i in range(10)]
    assert all(upload(client, zip_bytes(few), name=name).status_code == 201 for name in names)
    with a_worker_committing(client.app.state.settings.database_url) as commits:
        deleted = [client.delete(f"/datasets/{name}/versions/1") for name in names]
    assert [(r.status_code, r.text) for r in deleted] == [(204, "")] * len(names)
    assert commits[0] > 1 and client.get("/datasets").json() == []


def test_sweeps_on_an_upload_wait_for_a_committing_worker_instead_of_failing(
    client: TestClient, files: dict[str, bytes]
):
    # Creating a sweep reads (the base's dataset is pinned to its latest version), then writes the sweep.
    assert upload(client, zip_bytes(dict(list(files.items())[:40]))).status_code == 201
    base = {"architecture": "bn_lenet", "dataset": "fashion", "epochs": 1, "batch_size": 8}
    sweep = {"base": base, "space": {"optimizer.lr": {"values": [0.01, 0.1]}}, "max_concurrent": 1}
    with a_worker_committing(client.app.state.settings.database_url) as commits:
        created = [client.post("/sweeps", json=sweep) for _ in range(10)]
    assert [r.status_code for r in created] == [201] * 10, created[-1].text
    assert commits[0] > 1 and {r.json()["base"]["dataset"] for r in created} == {"fashion@1"}


def test_a_built_in_name_is_refused(client: TestClient, files: dict[str, bytes]):
    response = upload(client, zip_bytes(files), name="mnist")
    assert response.status_code == 403 and "built-in" in response.json()["detail"]


def test_uploading_needs_the_datasets_write_scope(tmp_path: Path, data_dir: Path, files: dict[str, bytes]):
    with make_client(create_app(required_settings(tmp_path, data_dir))) as client:
        reader = issue_token(client.app, "reader", Scope.jobs_read, Scope.datasets_read)
        writer = issue_token(client.app, "writer", Scope.datasets_write)
        refused = client.post("/datasets?name=f", content=zip_bytes(files), headers={**ZIP, **bearer(reader)})
        assert refused.status_code == 403 and "datasets:write" in refused.json()["detail"]
        stored = client.post("/datasets?name=f", content=zip_bytes(files), headers={**ZIP, **bearer(writer)})
        assert stored.status_code == 201 and stored.json()["owner"] == "writer"
        assert client.get("/datasets", headers=bearer(writer)).status_code == 403  # reading: datasets:read
        assert client.get("/datasets", headers=bearer(reader)).json()[0]["name"] == "f"


def test_stored_bytes_per_caller_are_limited(tmp_path: Path, data_dir: Path, files: dict[str, bytes]):
    settings: Settings = make_settings(tmp_path, data_dir, uploads=UploadSettings(max_stored_bytes=250_000))
    with make_client(create_app(settings)) as client:
        assert upload(client, zip_bytes(files), size=28).status_code == 201  # about 160 kB stored
        refused = upload(client, zip_bytes(dict(list(files.items())[:-1])), size=28)
        assert refused.status_code == 413 and "CONVLAB_DATASET_MAX_STORED_BYTES" in refused.json()["detail"]
        assert [d["versions"] for d in client.get("/datasets").json()] == [[1]]


@pytest.mark.parametrize("name", ["Bad Name", "flowers/../x", "-lead", "UPPER", "a" * 64])
def test_a_name_outside_the_rule_is_refused(client: TestClient, files: dict[str, bytes], name: str):
    refused = upload(client, zip_bytes(dict(list(files.items())[:20])), name=name)
    assert refused.status_code == 422 and "name" in refused.json()["detail"], refused.text
    assert client.get("/datasets").json() == []
