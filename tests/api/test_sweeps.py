"""Sweeps over HTTP, with trials trained for real by the worker code (tiny synthetic jobs)."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.worker import run_worker

TINY: dict[str, Any] = {
    "architecture": "bn_lenet",
    "dataset": "synthetic",
    "epochs": 1,
    "batch_size": 32,
    "train_subset": 64,
    "test_subset": 32,
}


def _sweep(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/sweeps", json={"base": TINY, **body})
    assert response.status_code == 201, response.json()
    return response.json()


def test_grid_runs_exactly_the_product_of_its_value_counts(client: TestClient, settings: Settings) -> None:
    space = {"optimizer.lr": {"values": [0.05, 0.1, 0.2]}, "batch_size": {"values": [16, 32]}}
    sweep = _sweep(client, space=space, sampler="grid", max_concurrent=2)
    assert sweep["max_trials"] == 6 and len(sweep["trials"]) == 2
    run_worker(settings, burst=True)
    done = client.get(f"/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    params = [(t["params"]["optimizer.lr"], t["params"]["batch_size"]) for t in done["trials"]]
    assert sorted(params) == sorted((lr, b) for lr in (0.05, 0.1, 0.2) for b in (16, 32))
    assert [t["number"] for t in done["trials"]] == list(range(6))
    assert all(t["status"] == "succeeded" and t["value"] is not None for t in done["trials"])
    listed = client.get("/jobs", params={"sweep": sweep["id"]}).json()
    assert sorted(j["id"] for j in listed["items"]) == sorted(t["job_id"] for t in done["trials"])
    best = max(done["trials"], key=lambda t: t["value"])
    assert done["best"]["value"] == best["value"]
    assert client.get(f"/sweeps/{sweep['id']}/plot.png").content.startswith(b"\x89PNG")


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_one_seed_proposes_the_same_first_configurations_twice(client: TestClient, sampler: str) -> None:
    space = {"optimizer.lr": {"low": 1e-3, "high": 1.0, "log": True}, "batch_size": {"low": 8, "high": 64, "step": 8}}
    first, again, other = (
        _sweep(client, space=space, sampler=sampler, seed=seed, max_trials=10, max_concurrent=4) for seed in (7, 7, 8)
    )
    assert [t["params"] for t in first["trials"]] == [t["params"] for t in again["trials"]]
    assert [t["params"] for t in first["trials"]] != [t["params"] for t in other["trials"]]
    assert len({repr(t["params"]) for t in first["trials"]}) == 4
    assert all(t["params"]["batch_size"] % 8 == 0 for t in first["trials"])


def test_extending_a_finished_sweep_runs_the_new_trials_only(client: TestClient, settings: Settings) -> None:
    sweep = _sweep(client, space={"seed": {"low": 0, "high": 1000}}, sampler="random", max_trials=2)
    run_worker(settings, burst=True)
    finished = client.get(f"/sweeps/{sweep['id']}").json()
    assert finished["status"] == "succeeded"
    before = {t["job_id"]: client.get(f"/jobs/{t['job_id']}").json() for t in finished["trials"]}
    extended = client.patch(f"/sweeps/{sweep['id']}", json={"max_trials": 4}).json()
    assert extended["status"] == "running" and [t["number"] for t in extended["trials"]] == [0, 1, 2, 3]
    run_worker(settings, burst=True)
    done = client.get(f"/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded" and len(done["trials"]) == 4
    for job_id, job in before.items():
        assert client.get(f"/jobs/{job_id}").json() == job  # not rerun: same attempt, same finish
    assert client.get("/jobs").json()["total"] == 4


def test_sweep_ends_failed_after_max_failed_trials_and_cancels_the_rest(client: TestClient, settings: Settings) -> None:
    space = {"optimizer.lr": {"values": [1e6, 2e6, 3e6]}}  # every trial diverges
    sweep = _sweep(client, space=space, sampler="grid", max_concurrent=2, max_failed=1)
    run_worker(settings, burst=True)
    done = client.get(f"/sweeps/{sweep['id']}").json()
    assert done["status"] == "failed" and done["best"] is None
    assert [t["status"] for t in done["trials"]] == ["failed", "cancelled"]  # no third trial was asked for


def test_max_trials_can_only_be_raised(client: TestClient) -> None:
    sweep = _sweep(client, space={"seed": {"low": 0, "high": 9}}, sampler="random", max_trials=3)
    response = client.patch(f"/sweeps/{sweep['id']}", json={"max_trials": 2})
    assert response.status_code == 422 and "can only be raised" in response.json()["detail"]


def test_cancel_cancels_queued_trials_and_asks_for_no_more(client: TestClient, settings: Settings) -> None:
    sweep = _sweep(client, space={"seed": {"values": [1, 2, 3, 4]}}, sampler="grid", max_concurrent=2)
    cancelled = client.post(f"/sweeps/{sweep['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert [t["status"] for t in cancelled["trials"]] == ["cancelled", "cancelled"]
    assert run_worker(settings, burst=True) == 0
    assert len(client.get(f"/sweeps/{sweep['id']}").json()["trials"]) == 2
    again = client.post(f"/sweeps/{sweep['id']}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


@pytest.mark.parametrize(
    ("space", "sampler", "message"),
    [
        ({"optimizer.lrr": {"values": [0.1]}}, "tpe", "space.optimizer.lrr: 'optimizer.lrr' is not a job spec field"),
        ({"optimizer": {"values": [0.1]}}, "tpe", "space.optimizer: name one field of the group"),
        ({"epochs.x": {"values": [1]}}, "tpe", "space.epochs.x: 'epochs' has no fields inside"),
        ({"optimizer.lr": {"low": 0.01, "high": 1.0}}, "grid", "needs a step or a count"),
        ({"optimizer.lr": {"values": [0.1, -1.0]}}, "grid", "space.optimizer.lr: -1.0: optimizer.lr: Input should be"),
        ({"epochs": {"values": [1, 100000]}}, "grid", "space.epochs: 100000: epochs: 100000 is above the limit"),
        ({"batch_size": {"low": 8.5, "high": 64}}, "random", "an integer field needs integer low, high and step"),
        ({"optimizer.lr": {"low": 1.0, "high": 0.1}}, "random", "low must be below high"),
        ({}, "random", "space: name at least one spec field"),
    ],
)
def test_bad_space_is_refused_naming_the_path(client: TestClient, space: Any, sampler: str, message: str) -> None:
    response = client.post("/sweeps", json={"base": TINY, "space": space, "sampler": sampler})
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_grid_with_more_trials_than_points_is_refused(client: TestClient) -> None:
    body = {"base": TINY, "space": {"seed": {"values": [1, 2]}}, "sampler": "grid", "max_trials": 3}
    response = client.post("/sweeps", json=body)
    assert response.status_code == 422 and "more than the grid's 2 points" in response.json()["detail"]


def test_sweep_list_plot_and_unknown_sweep(client: TestClient) -> None:
    sweep = _sweep(client, space={"seed": {"values": [1, 2]}}, sampler="grid")
    assert [s["id"] for s in client.get("/sweeps").json()["items"]] == [sweep["id"]]
    plot = client.get(f"/sweeps/{sweep['id']}/plot.png")
    assert plot.headers["content-type"] == "image/png" and plot.content.startswith(b"\x89PNG")
    assert client.get("/sweeps/999").status_code == 404
