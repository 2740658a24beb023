"""Pruning at epoch ends: a trial arranged to be bad (a learning rate too small to learn) is stopped early,
and every decision is an event with its rung, value and cutoff."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.worker import run_worker

# Real Fashion-MNIST: after one epoch the book's rate is far above chance, a rate of 1e-7 stays at chance.
BASE: dict[str, Any] = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 2,
    "batch_size": 128,
    "train_subset": 1024,
    "test_subset": 256,
}
GOOD, BAD = 0.9, 1e-7


def _prune_events(client: TestClient, job_id: int) -> list[dict[str, Any]]:
    stream = client.get(f"/jobs/{job_id}/events").text
    lines = stream.splitlines()
    return [json.loads(lines[i + 1].removeprefix("data: ")) for i, line in enumerate(lines) if line == "event: prune"]


@pytest.mark.parametrize(
    "pruner", [{"name": "median", "startup_trials": 1}, {"name": "asha", "min_epochs": 1, "reduction_factor": 2}]
)
def test_pruner_stops_the_trial_arranged_to_be_bad(client: TestClient, settings: Settings, pruner: Any) -> None:
    body = {
        "base": BASE,
        "space": {"optimizer.lr": {"values": [GOOD, BAD]}},
        "sampler": "grid",
        "pruner": pruner,
        "max_concurrent": 1,  # the good trial finishes first, so the bad one has something to lose against
    }
    sweep = client.post("/sweeps", json=body).json()
    run_worker(settings, burst=True)
    good, bad = client.get(f"/sweeps/{sweep['id']}").json()["trials"]
    assert (good["params"]["optimizer.lr"], good["state"], good["status"]) == (GOOD, "COMPLETE", "succeeded")
    assert (bad["params"]["optimizer.lr"], bad["state"], bad["status"]) == (BAD, "PRUNED", "cancelled")
    assert bad["pruned_epoch"] == 1 and client.get(f"/jobs/{bad['job_id']}").json()["epoch"] == 1
    decisions = _prune_events(client, bad["job_id"])
    assert [(d["pruner"], d["epoch"], d["prune"]) for d in decisions] == [(pruner["name"], 1, True)]
    assert decisions[0]["value"] == bad["values"]["1"] and decisions[0]["cutoff"] > decisions[0]["value"]
    kept = _prune_events(client, good["job_id"])
    assert [(d["epoch"], d["prune"]) for d in kept] == [(1, False)]  # judged at every epoch but the last
