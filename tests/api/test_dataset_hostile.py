"""Hostile and malformed archives: each answers a 4xx naming the reason and leaves nothing behind (no rows, no
temporary files, no bytes on disk beyond the database's own)."""

import io
import random
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from service.api.plumbing.uploads import uploads_dir
from service.config import Settings, UploadSettings
from service.main import create_app
from service.storage.datasets import list_versions
from tests.api.archives import fashion_files, png_declaring, tar_bytes, tar_with, zip_bytes
from tests.api.conftest import make_client, make_settings

LIMITS = UploadSettings(max_files=300, max_file_bytes=2_000_000, max_upload_bytes=3_000_000, max_ratio=50)


@pytest.fixture(scope="module")
def files(data_dir: Path) -> dict[str, bytes]:
    """40 real Fashion-MNIST images as PNG class folders."""
    return fashion_files(data_dir, train=40)


@pytest.fixture
def settings(tmp_path: Path, data_dir: Path) -> Settings:
    return make_settings(tmp_path / "state", data_dir, uploads=LIMITS)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(create_app(settings)) as client:
        yield client


def disk_use(state_dir: Path) -> dict[str, int]:
    """Every file under the state directory but the database's own, with its size."""
    return {
        str(p.relative_to(state_dir)): p.stat().st_size
        for p in state_dir.rglob("*")
        if p.is_file() and not p.name.startswith("convlab.db")
    }


def refused(client: TestClient, settings: Settings, body: bytes, status: int, words: str, **params: object) -> None:
    """Upload `body`: it must be refused with `status` and a detail containing `words`, leaving nothing behind."""
    before = disk_use(settings.state_dir)
    response = client.post("/datasets", params={"name": "bad", **params}, content=body)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert disk_use(settings.state_dir) == before
    assert not leftovers(settings)
    with client.app.state.session_factory() as session:
        assert list_versions(session) == []


def test_an_entry_inflating_past_its_limit_is_refused(client, settings, files):
    bomb = {**files, "shirt/bomb.png": b"\0" * 2_500_000}  # 2.5 MB of zeros deflate to a few kB
    refused(client, settings, zip_bytes(bomb), 413, "CONVLAB_DATASET_MAX_FILE_BYTES")


def test_an_entry_lying_about_its_size_is_stopped_while_it_inflates(client, settings, files):
    body = bytearray(zip_bytes({**files, "shirt/bomb.png": b"\0" * 2_500_000}))
    real = (2_500_000).to_bytes(4, "little")
    body = body.replace(real, (1000).to_bytes(4, "little"))  # the local and central headers now say 1,000 bytes
    response = client.post("/datasets", params={"name": "bad"}, content=bytes(body))
    assert response.status_code in (413, 422), response.text
    assert any(w in response.json()["detail"] for w in ("MAX_FILE_BYTES", "damaged", "MAX_RATIO"))
    assert not leftovers(settings)


def test_an_archive_past_the_total_ratio_is_refused(client, settings, files):
    zeros = {f"shirt/zero{i}.png": b"\0" * 1_000_000 for i in range(3)}  # each under the per-file limit
    refused(client, settings, zip_bytes({**files, **zeros}), 413, "CONVLAB_DATASET_MAX_RATIO")


@pytest.mark.parametrize("name", ["../escape/a.png", "shirt/../../a.png", "/etc/shirt/a.png", "shirt\\..\\a.png"])
def test_path_traversal_is_refused(client, settings, files, name):
    png = next(iter(files.values()))
    refused(client, settings, tar_bytes({**files, name: png}), 422, "archive: entry")


def test_a_symlink_in_a_tar_is_refused(client, settings, files):
    link = tarfile.TarInfo("shirt/link.png")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    refused(client, settings, tar_with(link, files), 422, "is a link")


def test_a_hard_link_in_a_tar_is_refused(client, settings, files):
    link = tarfile.TarInfo("shirt/hard.png")
    link.type, link.linkname = tarfile.LNKTYPE, next(iter(files))
    refused(client, settings, tar_with(link, files), 422, "is a link")


def test_a_symlink_in_a_zip_is_refused(client, settings, files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("shirt/link.png")
        link.external_attr = (0o120777 << 16) | 0
        archive.writestr(link, "/etc/passwd")
    refused(client, settings, out.getvalue(), 422, "symbolic link")


def test_a_file_that_is_not_the_image_its_name_says_is_refused(client, settings, files):
    refused(client, settings, zip_bytes({**files, "shirt/fake.png": b"GIF89a not a png at all"}), 422, "not a PNG")


def test_a_jpeg_named_png_is_refused(client, settings, files):
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 200
    refused(client, settings, zip_bytes({**files, "shirt/photo.png": jpeg}), 422, "shirt/photo.png is not a PNG")


def test_a_decompression_bomb_image_is_refused_before_decoding(client, settings, files):
    bomb = png_declaring(100_000, 100_000)
    assert len(bomb) < 1000
    refused(client, settings, zip_bytes({**files, "shirt/bomb.png": bomb}), 422, "decompression bomb")


def test_an_image_over_the_pixel_limit_is_refused(tmp_path, data_dir, files):
    settings = make_settings(tmp_path / "state", data_dir, uploads=UploadSettings(max_pixels=10_000))
    with make_client(create_app(settings)) as client:
        big = png_declaring(200, 200)
        refused(client, settings, zip_bytes({**files, "shirt/big.png": big}), 422, "CONVLAB_DATASET_MAX_PIXELS")


def test_small_images_asked_to_be_stored_large_are_refused_while_reading(tmp_path, data_dir, files):
    """40 real 28x28 images (about 15 kB zipped) stored at 512x512 would take 10 MB, and far more in memory while
    ingested: refused by the stored size, not the archive's."""
    limits = UploadSettings(max_ingested_bytes=5_000_000)
    settings = make_settings(tmp_path / "state", data_dir, uploads=limits)
    with make_client(create_app(settings)) as client:
        body = zip_bytes(files)
        assert len(body) < 100_000
        refused(client, settings, body, 413, "CONVLAB_DATASET_MAX_INGESTED_BYTES", size=512)
        assert client.post("/datasets", params={"name": "ok", "size": 256}, content=body).status_code == 201


def test_a_nested_archive_is_refused(client, settings, files):
    inner = zip_bytes(dict(list(files.items())[:3]))
    refused(client, settings, zip_bytes({**files, "shirt/more.zip": inner}), 422, "nested archive")


def test_a_nested_archive_under_another_name_is_refused(client, settings, files):
    inner = tar_bytes(dict(list(files.items())[:3]))
    refused(client, settings, zip_bytes({**files, "shirt/notes.txt": inner}), 422, "nested archive")


def test_fewer_than_two_classes_is_refused(client, settings, files):
    one = {k: v for k, v in files.items() if k.startswith("ankle_boot/")}
    refused(client, settings, zip_bytes(one), 422, "at least two")


def test_an_empty_class_is_refused(client, settings, files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(zipfile.ZipInfo("unicorn/"), b"")
    refused(client, settings, out.getvalue(), 422, "'unicorn' holds no images")


def test_too_many_files_are_refused(client, settings, files):
    png = next(iter(files.values()))
    many = {f"{'ab'[i % 2]}/{i}.png": png for i in range(301)}
    refused(client, settings, zip_bytes(many), 413, "CONVLAB_DATASET_MAX_FILES")


def test_too_many_bytes_are_refused(client, settings, files):
    noise = random.Random(0).randbytes(3_500_000)  # 3.5 MB that do not compress
    body = zip_bytes({**files, "shirt/noise.bin": noise})
    refused(client, settings, body, 413, "CONVLAB_DATASET_MAX_UPLOAD_BYTES")


def test_a_truncated_zip_is_refused(client, settings, files):
    body = zip_bytes(files)
    refused(client, settings, body[: len(body) // 2], 422, "truncated")


def test_a_truncated_tar_gz_is_refused(client, settings, files):
    body = tar_bytes(files)
    refused(client, settings, body[: len(body) // 2], 422, "truncated")


def test_an_empty_body_is_refused(client, settings):
    refused(client, settings, b"", 400, "empty")


def leftovers(settings: Settings) -> list[Path]:
    folder = uploads_dir(settings.state_dir)
    return list(folder.iterdir()) if folder.is_dir() else []


def wait_for(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


def _serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, port


def test_an_upload_cut_off_mid_body_leaves_nothing(settings, files):
    """Over live HTTP: the client announces the whole archive, sends half, and hangs up."""
    server, thread, port = _serve(settings)
    try:
        body = zip_bytes(files)
        with socket.create_connection(("127.0.0.1", port)) as conn:
            head = f"POST /datasets?name=cut HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            conn.sendall(head.encode() + body[: len(body) // 2])
            assert wait_for(lambda: len(leftovers(settings)) == 1), "the upload never began streaming to disk"
        assert wait_for(lambda: not leftovers(settings)), f"left behind: {leftovers(settings)}"
        with server.config.app.state.session_factory() as session:
            assert list_versions(session) == []
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_files_left_by_a_killed_upload_are_removed_at_start(settings):
    folder = uploads_dir(settings.state_dir)
    folder.mkdir(parents=True)
    (folder / "upload-abandoned").write_bytes(b"half an archive")
    with make_client(create_app(settings)):
        assert not any(folder.iterdir())
