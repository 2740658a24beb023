"""The Python client against a live `convlab serve`: jobs, events (across a restart), history, predict, lab."""

import hashlib
import threading
from pathlib import Path

import pytest

from service.client import Client, ClientError, Event
from tests.api.conftest import png_bytes
from tests.client.conftest import SMALL_JOB, start_serve
from tests.e2e.conftest import free_port, stop


def test_a_job_submitted_followed_and_read_back(client, test_images):
    job = client.submit(SMALL_JOB, seed=3)
    assert job.status.value == "queued" and job.spec["seed"] == 3 and job.spec["optimizer"]["lr"] == 0.5
    events = list(client.events(job.id))
    stored = [e for e in events if e.id is not None]
    assert [e.id for e in stored] == sorted({e.id for e in stored})  # in order, none twice
    statuses = [e.data["status"] for e in events if e.kind == "status"]
    assert statuses == ["queued", "running", "succeeded"] and events[-1].final
    assert [e.data["epoch"] for e in events if e.kind == "epoch"] == [1, 2]
    assert client.wait(job.id, timeout=5).status.value == "succeeded"

    history = client.history(job.id)
    assert [e.epoch for e in history.epochs] == [1, 2] and history.total_steps_recorded > 0
    assert client.history_plot(job.id).startswith(b"\x89PNG")
    checkpoints = client.checkpoints(job.id)
    assert checkpoints and any(c.best for c in checkpoints)
    data = client.checkpoint(job.id, checkpoints[-1].epoch)
    assert hashlib.sha256(data).hexdigest() == checkpoints[-1].sha256

    images, _ = test_images
    from_arrays = client.predict(job.id, [images[0], images[1]], top_k=2)
    from_bytes = client.predict(job.id, [png_bytes(images[0])], top_k=2)
    assert len(from_arrays.predictions) == 2 and len(from_arrays.predictions[0].top_k) == 2
    assert from_bytes.predictions[0].label == from_arrays.predictions[0].label
    assert job.id in {j.id for j in client.list(status="succeeded").items}

    client.delete(job.id)
    with pytest.raises(ClientError) as gone:
        client.get(job.id)
    assert gone.value.status == 404 and gone.value.detail == f"job {job.id} not found"


def test_errors_carry_the_status_and_the_servers_detail(client, server):
    with pytest.raises(ClientError) as refused:
        client.request("POST", "/jobs", json={"architecture": "bn_lenet", "epochs": 100_000})
    assert refused.value.status == 422 and "epochs" in refused.value.detail and "max_epochs" in refused.value.detail
    with pytest.raises(ClientError) as invalid:
        client.submit(architecture="bn_lenet", optimizer={"lr": -1})
    assert invalid.value.status == 422 and invalid.value.detail.startswith("optimizer.lr:")
    job = client.submit(SMALL_JOB, epochs=1)
    client.wait(job.id, timeout=120)
    with pytest.raises(ClientError) as finished:
        client.cancel(job.id)
    assert finished.value.status == 409 and "finished" in finished.value.detail
    with Client("http://127.0.0.1:1") as nowhere, pytest.raises(ClientError) as unreachable:
        nowhere.version()
    assert unreachable.value.status is None and "cannot reach convlab" in unreachable.value.detail


def test_the_lab_calls(client):
    one = client.trajectories(
        function="0.1*x1**2 + 2*x2**2", optimizer={"name": "momentum", "lr": 0.6, "momentum": 0.5}, x0=[-5, -2]
    )
    assert one["optimizer"] == "momentum" and len(one["points"]) == 21
    compared = client.trajectories(function="bowl", optimizers=[{"name": "gd"}, {"name": "adam"}], steps=5)
    assert [run["optimizer"] for run in compared["runs"]] == ["gd", "adam"]
    assert client.trajectory_plot(function="bowl", optimizer={"name": "gd"}, format="svg").startswith(b"<?xml")
    assert client.stationary_point(function="x1**2 - x2**2", x=[0, 0])["classification"] == "saddle"
    assert "rosenbrock" in {p["name"] for p in client.functions()["functions"]}


def test_the_event_stream_survives_a_server_restart(tmp_path: Path, data_dir):
    port = free_port()
    first = start_serve(tmp_path, data_dir, port, workers=0)  # the job waits in the queue
    url = f"http://127.0.0.1:{port}"
    events: list[Event] = []
    got_first = threading.Event()
    with Client(url, token="") as client:
        job = client.submit(SMALL_JOB)

        def follow() -> None:
            for event in client.events(job.id):
                events.append(event)
                got_first.set()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        try:
            assert got_first.wait(30)
        finally:
            stop(first)
        second = start_serve(tmp_path, data_dir, port, workers=1)  # same database, same address
        try:
            follower.join(timeout=180)
            assert not follower.is_alive()
        finally:
            stop(second)
    statuses = [e.data["status"] for e in events if e.kind == "status"]
    assert statuses == ["queued", "running", "succeeded"]  # nothing missed or repeated across the restart
    assert [e.data["epoch"] for e in events if e.kind == "epoch"] == [1, 2]
    ids = [e.id for e in events if e.id is not None]
    assert ids == sorted(set(ids))


def test_the_token_is_sent_as_a_bearer_token(tmp_path: Path, data_dir):
    token = "cvl_" + "t" * 40
    port = free_port()
    process = start_serve(tmp_path, data_dir, port, workers=0, CONVLAB_AUTH="required", CONVLAB_ADMIN_TOKEN=token)
    try:
        with Client(f"http://127.0.0.1:{port}", token=token) as client:
            assert client.list().total == 0
        with Client(f"http://127.0.0.1:{port}", token="") as anonymous, pytest.raises(ClientError) as refused:
            anonymous.list()
        assert refused.value.status == 401
    finally:
        stop(process)


def test_the_event_stream_gives_up_once_reconnecting_fails_for_long_enough():
    with Client("http://127.0.0.1:1", token="") as nowhere, pytest.raises(ClientError) as lost:
        next(nowhere.events(1, reconnect_seconds=1.0))
    assert lost.value.status is None and lost.value.detail.startswith("lost the event stream of job 1:")
