"""The `convlab jobs|predict|lab` commands as a user runs them: subprocesses against a live server, not a TTY."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from service.client import Client
from tests.api.conftest import png_bytes

TIMEOUT = 300


def convlab(server, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `convlab ARGS` with CONVLAB_URL pointing at the server; output captured (so not a terminal)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVLAB_")}
    env["CONVLAB_URL"] = server.url
    command = [sys.executable, "-m", "service.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=cwd)


@dataclass(frozen=True)
class Watched:
    id: int
    output: str


@pytest.fixture(scope="module")
def trained(server) -> Watched:
    """A job submitted and watched to its end with `convlab jobs submit --watch`; its output checked in a test."""
    done = convlab(
        server,
        *("jobs", "submit", "--arch", "bn_lenet", "--dataset", "fashion_mnist", "--epochs", "2", "--watch"),
        *("--set", "optimizer.lr=0.5", "--set", "train_subset=1024", "--set", "test_subset=256", "--batch-size", "128"),
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("queued job ") and first.endswith("bn_lenet on fashion_mnist, 2 epochs")
    return Watched(int(first.split()[2].rstrip(":")), done.stdout)


def test_submit_watch_prints_plain_progress_lines_when_not_a_terminal(trained):
    lines, job = trained.output.splitlines(), trained.id
    assert f"job {job}: queued (submitted)" in lines and f"job {job}: running (claimed)" in lines
    assert any(line.startswith("epoch 1/2: step ") and "ETA" in line for line in lines)
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ") and "loss" in line] == [
        "epoch 1",
        "epoch 2",
    ]
    assert lines[-1] == f"job {job}: succeeded (completed 2 epochs, 16 steps)"
    assert not any("\x1b[" in line for line in lines)  # no terminal escapes in a pipe


def test_ls_show_and_history_as_tables_and_json(server, trained, tmp_path):
    listed = convlab(server, "jobs", "ls")
    assert listed.returncode == 0 and any(
        line.split()[:2] == [str(trained.id), "succeeded"] for line in listed.stdout.splitlines()
    )
    page = json.loads(convlab(server, "jobs", "ls", "--json", "--status", "succeeded").stdout)
    assert trained.id in [job["id"] for job in page["items"]]
    shown = json.loads(convlab(server, "jobs", "show", str(trained.id), "--json").stdout)
    assert shown["status"] == "succeeded" and shown["spec"]["optimizer"]["lr"] == 0.5
    assert "succeeded" in convlab(server, "jobs", "show", str(trained.id)).stdout
    plot = tmp_path / "curves.svg"
    history = convlab(server, "jobs", "history", str(trained.id), "--plot", str(plot))
    assert history.returncode == 0 and f"wrote {plot}" in history.stdout
    assert plot.read_bytes().startswith(b"<?xml")
    assert [line.split()[0] for line in history.stdout.splitlines()[1:3]] == ["1", "2"]
    epochs = json.loads(convlab(server, "jobs", "history", str(trained.id), "--json").stdout)["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]


def test_predict_prints_the_top_k_table(server, trained, tmp_path, test_images):
    images, _ = test_images
    names = ["shoe.png", "shirt.png"]
    for name, image in zip(names, images, strict=False):
        (tmp_path / name).write_bytes(png_bytes(image))
    table = convlab(server, "predict", str(trained.id), *names, "--top-k", "2", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[1:5]]
    assert [row[0] for row in rows[::2]] == names and [row[-3] for row in rows[1::2]] == ["2", "2"]
    answer = json.loads(convlab(server, "predict", str(trained.id), names[0], "--json", cwd=tmp_path).stdout)
    assert len(answer["predictions"][0]["top_k"]) == 3
    missing = convlab(server, "predict", str(trained.id), str(tmp_path / "none.png"))
    assert missing.returncode == 2 and "none.png: No such file or directory" in missing.stderr


def test_predict_explain_writes_the_overlay_and_the_client_gets_heatmaps(server, trained, tmp_path, test_images):
    images, _ = test_images
    (tmp_path / "shoe.png").write_bytes(png_bytes(images[0]))
    done = convlab(server, "predict", str(trained.id), "shoe.png", "--explain", "out.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "out.png") as overlay:
        assert overlay.format == "PNG" and overlay.size == (140, 140)  # one 28x28 tile, scaled by 5
    with Client(server.url) as client:
        answer = client.explain(trained.id, [images[0], images[1]], method="integrated_gradients", steps=8)
    assert len(answer.explanations) == 2 and len(answer.explanations[0].heatmap) == 28
    assert max(max(row) for row in answer.explanations[0].heatmap) == 1.0


def test_lab_trajectory_with_a_negative_start_and_a_plot(server, tmp_path):
    plot = tmp_path / "momentum.png"
    args = ("lab", "trajectory", "0.1*x1**2 + 2*x2**2", "--x0", "-5,-2", "--steps", "20")
    result = convlab(server, *args, "--optimizer", "momentum:lr=0.6,momentum=0.5", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["momentum", "20"] and plot.read_bytes().startswith(b"\x89PNG")
    compared = json.loads(convlab(server, *args, "--optimizer", "gd:lr=0.4", "--optimizer", "adam", "--json").stdout)
    assert [run["optimizer"] for run in compared["runs"]] == ["gd", "adam"] and compared["x0"] == [-5.0, -2.0]
    bad = convlab(server, "lab", "trajectory", "x**2", "--optimizer", "momentum:lr")
    assert bad.returncode == 2 and "expected NAME:KEY=VALUE" in bad.stderr


def test_refusals_exit_non_zero_with_the_servers_detail_on_stderr(server, trained):
    missing = convlab(server, "jobs", "show", "999999")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", "convlab jobs: job 999999 not found\n")
    finished = convlab(server, "jobs", "cancel", str(trained.id))
    assert finished.returncode == 1 and "finished" in finished.stderr
    too_many = convlab(server, "jobs", "submit", "--arch", "bn_lenet", "--epochs", "100000")
    assert too_many.returncode == 1 and "max_epochs" in too_many.stderr
    bad_set = convlab(server, "jobs", "submit", "--arch", "bn_lenet", "--set", "lr")
    assert bad_set.returncode == 2 and "expected FIELD=VALUE" in bad_set.stderr
    nowhere = convlab(type(server)("http://127.0.0.1:1", server.state_dir, server.log), "jobs", "ls")
    assert nowhere.returncode == 3 and "cannot reach convlab at http://127.0.0.1:1" in nowhere.stderr


def test_cancel_watch_and_rm(server):
    queued = json.loads(
        convlab(server, "jobs", "submit", "--arch", "bn_lenet", "--json", "--set", "priority=-1000").stdout
    )
    job_id = str(queued["id"])
    cancelled = convlab(server, "jobs", "cancel", job_id, "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] in ("cancelled", "running")
    watched = convlab(server, "jobs", "watch", job_id, "--json")
    assert watched.returncode == 1 and "cancelled" in watched.stderr  # a job that did not succeed
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "cancelled"
    removed = convlab(server, "jobs", "rm", job_id)
    assert (removed.returncode, removed.stdout) == (0, f"deleted job {job_id}\n")
    assert convlab(server, "jobs", "show", job_id).returncode == 1


def test_help_lists_the_client_commands(server):
    usage = convlab(server, "--help").stdout
    assert all(name in usage for name in ("jobs", "predict", "lab", "serve", "token"))
