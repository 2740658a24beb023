"""`convlab datasets push|ls|show|rm` and the client's dataset calls, against a live server, with real
Fashion-MNIST images written as PNG class folders."""

import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from service.client import Client, ClientError
from service.client.datasets import pack_folder
from tests.api.archives import fashion_files, tar_bytes
from tests.client.test_commands import convlab


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def images(data_dir: Path) -> dict[str, bytes]:
    """40 real Fashion-MNIST training images, `<class>/<index>.png`."""
    return fashion_files(data_dir, train=40)


@pytest.fixture
def folder(tmp_path: Path, images: dict[str, bytes]) -> Path:
    """The images as an ImageFolder on disk, with a dotfile that is not an image (left out when packing)."""
    folder = write_files(tmp_path / "clothes", images)
    (folder / ".notes.txt").write_text("not an image")
    return folder


def upload_lines(stderr: str) -> list[tuple[int, int]]:
    """(sent, total) of each `uploading NAME: SENT/TOTAL bytes` line."""
    found = [line.rsplit(": ", 1)[1].removesuffix(" bytes") for line in stderr.splitlines() if "uploading" in line]
    return [(int(sent), int(total)) for sent, total in (f.split("/") for f in found)]


def test_pack_folder_writes_every_image_under_its_class_and_leaves_dotfiles_out(folder, images, tmp_path):
    with (tmp_path / "packed.zip").open("wb") as out:
        assert pack_folder(folder, out) == len(images)
    with zipfile.ZipFile(tmp_path / "packed.zip") as archive:
        assert sorted(archive.namelist()) == sorted(images)
        assert all(archive.read(name) == data for name, data in images.items())


def test_push_packs_a_folder_shows_the_upload_and_finds_the_same_images_again(server, folder):
    first = convlab(server, "datasets", "push", str(folder), "--name", "clothes", "--size", "28")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "stored clothes@1"
    assert any(line.split()[:2] == ["ref", "clothes@1"] for line in first.stdout.splitlines())
    sent, total = upload_lines(first.stderr)[-1]
    assert sent == total > 0
    pushed = convlab(server, "datasets", "push", str(folder), "--name", "clothes", "--size", "28", "--json")
    again = json.loads(pushed.stdout)
    assert (again["ref"], again["created"], again["size"]) == ("clothes@1", False, 28)
    assert again["train_images"] + again["test_images"] == 40


def test_push_sends_an_archive_as_is_with_its_given_split(server, data_dir, tmp_path):
    archive = tmp_path / "split.tar.gz"
    archive.write_bytes(tar_bytes(fashion_files(data_dir, train=30, test=10)))
    pushed = convlab(server, "datasets", "push", str(archive), "--name", "split", "--json")
    assert pushed.returncode == 0, pushed.stderr
    version = json.loads(pushed.stdout)
    assert (version["ref"], version["split"], version["created"]) == ("split@1", "given", True)
    assert (version["train_images"], version["test_images"]) == (30, 10)
    assert upload_lines(pushed.stderr)[-1] == (archive.stat().st_size,) * 2  # its bytes, not a repacking


def test_ls_show_samples_and_rm(server, folder, tmp_path):
    assert convlab(server, "datasets", "push", str(folder), "--name", "shown", "--val-fraction", "0.25").returncode == 0
    listed = convlab(server, "datasets", "ls")
    assert ["shown", "1", "shown@1"] in [line.split() for line in listed.stdout.splitlines()]
    assert {"name": "shown", "versions": [1], "latest": "shown@1"} in json.loads(
        convlab(server, "datasets", "ls", "--json").stdout
    )
    versions = convlab(server, "datasets", "show", "shown").stdout.splitlines()
    assert versions[1].split()[:4] == ["shown@1", "10", "28", "12"]  # 10 classes, a quarter of each held out
    samples = tmp_path / "grid.png"
    detail = convlab(server, "datasets", "show", "shown@1", "--samples", str(samples))
    assert detail.returncode == 0, detail.stderr
    rows = [line.split() for line in detail.stdout.splitlines()]
    per_class = rows[[r[:1] for r in rows].index(["LABEL"]) + 1 :][:10]
    assert [r[:2] for r in per_class[:2]] == [["0", "ankle_boot"], ["1", "bag"]]  # sorted folder names
    assert sum(int(r[2]) + int(r[3]) for r in per_class) == 40
    assert f"wrote {samples}" in detail.stdout
    with Image.open(samples) as grid:
        assert grid.format == "PNG"
    again = tmp_path / "latest.png"
    latest = convlab(server, "datasets", "show", "shown", "--samples", str(again), "--json")  # NAME: the latest
    assert json.loads(latest.stdout)["ref"] == "shown@1" and again.read_bytes() == samples.read_bytes()
    removed = convlab(server, "datasets", "rm", "shown@1")
    assert (removed.returncode, removed.stdout) == (0, "deleted dataset shown@1\n")
    gone = convlab(server, "datasets", "show", "shown@1")
    assert gone.returncode == 1 and gone.stderr.startswith("convlab datasets: ") and "shown" in gone.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("push", "/nonexistent/folder", "--name", "x"), 2, "/nonexistent/folder: No such file or directory"),
        (("push", "{empty}", "--name", "x"), 1, "no class folders"),
        (("push", "{folder}", "--name", "Bad Name"), 1, "name: 'Bad Name' is not a dataset name"),
        (("rm", "clothes"), 2, "name the version to delete, e.g. clothes@1"),
        (("show", "Not/A/Name"), 2, "expected NAME or NAME@VERSION"),
        (("show", "nothing@7"), 1, "nothing"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_an_exit_code(server, folder, tmp_path, args, code, words):
    (tmp_path / "empty").mkdir()
    filled = [a.format(empty=tmp_path / "empty", folder=folder) for a in args]
    done = convlab(server, "datasets", *filled)
    assert (done.returncode, done.stdout) == (code, "")
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("convlab datasets: ") and words in done.stderr


def test_the_client_reports_progress_reads_back_and_deletes(server, folder):
    seen: list[tuple[int, int]] = []
    with Client(server.url, token="") as client:
        pushed = client.push_dataset(folder, name="client", size=16, progress=lambda s, t: seen.append((s, t)))
        assert pushed.created and pushed.ref == "client@1" and pushed.size == 16
        assert seen and seen[-1][0] == seen[-1][1] and [s for s, _ in seen] == sorted(s for s, _ in seen)
        assert client.dataset_version("client", 1).sha256 == pushed.sha256
        assert [v.ref for v in client.dataset("client").versions] == ["client@1"]
        assert client.dataset_samples("client", 1, per_class=2).startswith(b"\x89PNG")
        client.delete_dataset("client", 1)
        with pytest.raises(ClientError) as gone:
            client.dataset_version("client", 1)
    assert gone.value.status == 404
