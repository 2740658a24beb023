"""The model registry over HTTP (auth required): models, immutable versions with their checkpoint, metrics and
verified ONNX export, aliases whose every move is kept with its token, and predictions by name."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.access import Scope
from service.client import Client
from service.config import Settings
from service.main import create_app
from service.storage import exports
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import SMALL_JOB, make_client, png_bytes
from tests.api.test_export import copy_database


@pytest.fixture(scope="module")
def client(
    trained_settings: Settings, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[TestClient]:
    """Auth required, on a copy of the trained job's database; model `fashion` has v1 (epoch 1), v2 (epoch 2)."""
    state_dir = tmp_path_factory.mktemp("registry")
    copy_database(trained_settings, state_dir)
    with make_client(create_app(required_settings(state_dir, data_dir))) as client:
        app = client.app
        client.headers.update(bearer(issue_token(app, "alice", Scope.models_read, Scope.models_write)))
        client.app.state.tokens = {
            "bob": bearer(issue_token(app, "bob", Scope.models_read, Scope.models_write)),
            "reader": bearer(issue_token(app, "reader", Scope.models_read)),
            "predictor": bearer(issue_token(app, "predictor", Scope.predict)),
            "jobs": bearer(issue_token(app, "jobs", Scope.jobs_read, Scope.jobs_write, Scope.predict)),
        }
        assert client.post("/models", json={"name": "fashion", "description": "shirts"}).status_code == 201
        for epoch in (1, 2):
            assert client.post("/models/fashion/versions", json={"job_id": 1, "epoch": epoch}).status_code == 201
        yield client


def tokens(client: TestClient) -> dict[str, dict[str, str]]:
    return client.app.state.tokens  # type: ignore[no-any-return]


def test_version_records_job_epoch_checkpoint_sha256_classes_metrics_and_its_onnx_export(client: TestClient) -> None:
    version = client.get("/models/fashion/versions/2").json()
    with client.app.state.session_factory() as session:
        jobs_checkpoint = client.get("/jobs/1/checkpoints/2", headers=tokens(client)["jobs"]).content
        assert version["checkpoint_sha256"] == hashlib.sha256(jobs_checkpoint).hexdigest()
        export = client.get("/jobs/1/export?epoch=2", headers=tokens(client)["jobs"])
        assert export.headers["X-Export-Cache"] == "hit"  # made at registration, not now
        assert version["onnx_sha256"] == hashlib.sha256(export.content).hexdigest()
        assert exports.count_exports(session, 2) <= 1
    assert (version["version"], version["job_id"], version["epoch"], version["dataset"]) == (2, 1, 2, "fashion_mnist")
    assert version["class_names"][9] == "Ankle boot" and version["created_by"] == "alice"
    assert version["metrics"]["epoch"] == 2 and 0 < version["metrics"]["test_acc"] <= 1


def test_versions_are_numbered_in_order_and_immutable(client: TestClient) -> None:
    listed = client.get("/models/fashion/versions").json()
    assert [(v["version"], v["epoch"]) for v in listed[:2]] == [(1, 1), (2, 2)]
    assert client.put("/models/fashion/versions/1", json={"epoch": 2}).status_code == 405
    assert client.get("/models/fashion").json()["latest_version"] >= 2


def test_best_checkpoint_is_registered_when_no_epoch_is_given(client: TestClient) -> None:
    client.post("/models", json={"name": "best"})
    version = client.post("/models/best/versions", json={"job_id": 1}).json()
    kept = client.get("/jobs/1/checkpoints", headers=tokens(client)["jobs"]).json()
    best = max(kept, key=lambda c: (c["metrics"]["test_acc"], c["step"]))
    assert (version["version"], version["checkpoint_sha256"]) == (1, best["sha256"])


def test_registering_an_unfinished_job_is_409_and_unknown_ones_404(client: TestClient) -> None:
    queued = client.post("/jobs", json=SMALL_JOB, headers=tokens(client)["jobs"]).json()["id"]
    response = client.post("/models/fashion/versions", json={"job_id": queued})
    assert response.status_code == 409 and "queued" in response.json()["detail"]
    assert client.post("/models/fashion/versions", json={"job_id": 999}).status_code == 404
    assert client.post("/models/nope/versions", json={"job_id": 1}).status_code == 404
    assert client.post("/models/fashion/versions", json={"job_id": 1, "epoch": 7}).status_code == 404


def test_model_names_are_unique_and_checked(client: TestClient) -> None:
    assert client.post("/models", json={"name": "fashion"}).status_code == 409
    response = client.post("/models", json={"name": "bad name"})
    assert response.status_code == 422 and "name" in response.json()["detail"]
    assert "fashion" in [m["name"] for m in client.get("/models").json()]


def test_every_alias_move_is_kept_with_its_token_and_rollback_is_a_move_back(client: TestClient) -> None:
    assert client.put("/models/fashion/aliases/staging", json={"version": 1}).status_code == 200
    assert (
        client.put("/models/fashion/aliases/staging", json={"version": 2}, headers=tokens(client)["bob"]).json()[
            "from_version"
        ]
        == 1
    )
    client.put("/models/fashion/aliases/staging", json={"version": 1})
    history = client.get("/models/fashion/aliases/staging/history").json()
    moves = [(m["from_version"], m["to_version"], m["moved_by"]) for m in history]
    assert moves == [(None, 1, "alice"), (1, 2, "bob"), (2, 1, "alice")]
    assert client.get("/models/fashion").json()["aliases"]["staging"] == 1


def test_deleting_a_version_an_alias_points_at_is_409(client: TestClient) -> None:
    client.post("/models", json={"name": "deletable"})
    for _ in range(2):
        client.post("/models/deletable/versions", json={"job_id": 1, "epoch": 1})
    client.put("/models/deletable/aliases/prod", json={"version": 1})
    refused = client.delete("/models/deletable/versions/1")
    assert refused.status_code == 409 and "prod" in refused.json()["detail"]
    assert client.delete("/models/deletable/versions/2").status_code == 204
    assert client.get("/models/deletable/versions/2").status_code == 404
    assert client.post("/models/deletable/versions", json={"job_id": 1, "epoch": 1}).json()["version"] == 3


def test_moving_an_alias_to_a_missing_version_is_404_and_aliases_start_with_a_letter(client: TestClient) -> None:
    assert client.put("/models/fashion/aliases/prod", json={"version": 99}).status_code == 404
    response = client.put("/models/fashion/aliases/7up", json={"version": 1})
    assert response.status_code == 422 and "alias" in response.json()["detail"]


def test_scopes_models_read_cannot_write_and_predict_cannot_read(client: TestClient) -> None:
    reader, predictor = tokens(client)["reader"], tokens(client)["predictor"]
    assert client.get("/models/fashion", headers=reader).status_code == 200
    assert client.put("/models/fashion/aliases/prod", json={"version": 1}, headers=reader).status_code == 403
    assert client.post("/models", json={"name": "x"}, headers=reader).status_code == 403
    assert client.get("/models", headers=predictor).status_code == 403
    assert client.post("/models/fashion/predict", json={"pixels": [[[0] * 28] * 28]}, headers=reader).status_code == 403


def test_predict_by_name_serves_prod_and_names_the_version_in_body_and_header(
    client: TestClient, test_images: tuple[np.ndarray, np.ndarray]
) -> None:
    client.put("/models/fashion/aliases/prod", json={"version": 1})
    files = [("file", (f"{i}.png", png_bytes(image), "image/png")) for i, image in enumerate(test_images[0][:8])]
    by_name = client.post("/models/fashion/predict?top_k=10", files=files, headers=tokens(client)["predictor"])
    by_job = client.post("/jobs/1/predict?top_k=10&checkpoint=1", files=files, headers=tokens(client)["jobs"])
    body = by_name.json()
    assert by_name.headers["X-Model-Version"] == "1" and (body["model"], body["version"], body["alias"]) == (
        "fashion",
        1,
        "prod",
    )
    assert body["predictions"] == by_job.json()["predictions"] and body["checkpoint_epoch"] == 1


def test_predict_by_name_follows_a_move_on_the_next_request_and_takes_version_or_alias(client: TestClient) -> None:
    pixels = {"pixels": [[[0] * 28] * 28]}
    headers = tokens(client)["predictor"]
    for version in (2, 1, 2):
        client.put("/models/fashion/aliases/prod", json={"version": version})
        assert client.post("/models/fashion/predict", json=pixels, headers=headers).json()["version"] == version
    assert client.post("/models/fashion/predict?version=1", json=pixels, headers=headers).json()["alias"] is None
    client.put("/models/fashion/aliases/canary", json={"version": 1})
    answer = client.post("/models/fashion/predict?alias=canary", json=pixels, headers=headers)
    assert answer.headers["X-Model-Version"] == "1"
    assert client.post("/models/fashion/predict?alias=nope", json=pixels, headers=headers).status_code == 404
    assert client.post("/models/fashion/predict?alias=prod&version=1", json=pixels, headers=headers).status_code == 422


def test_predictions_are_counted_per_model_and_version(client: TestClient) -> None:
    pixels = {"pixels": [[[0] * 28] * 28]}
    client.post("/models/fashion/predict?version=2", json=pixels, headers=tokens(client)["predictor"])
    metrics = client.app.state.metrics.registry
    value = metrics.get_sample_value("convlab_model_requests_total", {"model": "fashion", "version": "2"})
    assert value is not None and value >= 1


def _infer(client: TestClient, body: object, path: str = "/v2/models/fashion/versions/1/infer"):
    return client.post(path, json=body, headers=tokens(client)["predictor"])


def test_oip_refuses_malformed_inference_requests_with_400_and_the_protocols_error(client: TestClient) -> None:
    pixels = [0] * 784
    cases = [
        {"inputs": [{"name": "other", "shape": [1, 28, 28], "datatype": "UINT8", "data": pixels}]},
        {"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "INT64", "data": pixels}]},
        {"inputs": [{"name": "input", "shape": [2, 28, 28], "datatype": "UINT8", "data": pixels}]},
        {
            "inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": pixels}],
            "outputs": [{"name": "x"}],
        },
        {"inputs": [{"name": "input", "shape": [1, 1, 27, 27], "datatype": "FP32", "data": [0.0] * 729}]},
        {"inputs": []},
    ]
    for body in cases:
        response = _infer(client, body)
        assert response.status_code in (400, 422) and set(response.json()) == {"error"}, body
    assert _infer(
        client, cases[2] | {"inputs": [{**cases[2]["inputs"][0], "shape": [1, 28, 28]}]}, "/v2/models/nope/infer"
    ).json() == {"error": "model 'nope' not found"}
    assert client.get("/v2/nowhere").json() == {"error": "Not Found"}


def test_oip_json_uint8_inference_answers_logits_probabilities_and_names_the_version(client: TestClient) -> None:
    body = {"id": "a1", "inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": [0] * 784}]}
    response = _infer(client, body)
    answer = response.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("fashion", "1", "a1")
    assert response.headers["X-Model-Version"] == "1"
    logits, probabilities = answer["outputs"]
    assert (logits["name"], logits["shape"], probabilities["shape"]) == ("logits", [1, 10], [1, 10])
    assert abs(sum(probabilities["data"]) - 1) < 1e-5


def test_oip_counts_images_against_the_predict_limit(client: TestClient) -> None:
    limit = client.app.state.settings.serving.predict_max_images
    body = {"inputs": [{"name": "input", "shape": [limit + 1, 1, 1], "datatype": "UINT8", "data": [0] * (limit + 1)}]}
    response = _infer(client, body)
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_the_thin_client_registers_promotes_rolls_back_and_predicts_by_name(
    client: TestClient, test_images: tuple[np.ndarray, np.ndarray]
) -> None:
    secret = client.headers["Authorization"].removeprefix("Bearer ")
    with Client("http://testserver", secret, transport=client._transport) as convlab:
        convlab.create_model("thin")
        assert convlab.register("thin", 1, epoch=1).version == 1 and convlab.register("thin", 1).version == 2
        convlab.move_alias("thin", "prod", 2)
        convlab.move_alias("thin", "prod", 1)  # a rollback
        assert [(m.from_version, m.to_version) for m in convlab.alias_history("thin", "prod")] == [(None, 2), (2, 1)]
        assert convlab.model("thin").aliases == {"prod": 1} and len(convlab.versions("thin")) == 2
        assert "thin" in [m.name for m in convlab.models()]
    with Client(
        "http://testserver", tokens(client)["predictor"]["Authorization"][7:], transport=client._transport
    ) as c:
        answer = c.predict_by_name("thin", [png_bytes(test_images[0][0])], version=2)
        assert (answer.model, answer.version, len(answer.predictions)) == ("thin", 2, 1)


def test_fine_tuning_from_a_model_pins_the_version_its_alias_names_at_admission(client: TestClient) -> None:
    """init_from {model, alias}: the stored spec names the version's job and epoch, so a later move of the alias
    changes nothing for the job (and its clones); an unknown model or alias is a 422 naming init_from.model."""
    assert client.put("/models/fashion/aliases/tuning", json={"version": 2}).status_code == 200
    spec = client.get("/jobs/1", headers=tokens(client)["jobs"]).json()["spec"]
    body = {key: spec[key] for key in ("architecture", "dataset", "resize", "train_subset", "test_subset")}
    source = {"model": "fashion", "alias": "tuning", "freeze": True}
    queued = client.post("/jobs", json={**body, "epochs": 1, "init_from": source}, headers=tokens(client)["jobs"])
    assert queued.status_code == 201, queued.text
    pinned = queued.json()["spec"]["init_from"]
    assert (pinned["job"], pinned["epoch"], pinned["model"], pinned["version"]) == (1, 2, "fashion", 2)
    assert len(pinned["checkpoint_sha256"]) == 64
    client.put("/models/fashion/aliases/tuning", json={"version": 1})
    stored = client.get(f"/jobs/{queued.json()['id']}", headers=tokens(client)["jobs"]).json()["spec"]["init_from"]
    assert (stored["job"], stored["epoch"]) == (1, 2)
    for missing in ({"model": "nope"}, {"model": "fashion", "alias": "absent"}):
        refused = client.post("/jobs", json={**body, "init_from": missing}, headers=tokens(client)["jobs"])
        assert refused.status_code == 422 and refused.json()["detail"].startswith("init_from.model: "), refused.text
    unnamed = client.post("/jobs", json={**body, "init_from": {"alias": "prod"}}, headers=tokens(client)["jobs"])
    assert unnamed.status_code == 422 and "give the model too" in unnamed.text


def test_explain_by_name_uses_the_named_version_and_says_which(
    client: TestClient, test_images: tuple[np.ndarray, np.ndarray]
) -> None:
    files = [("file", (f"{i}.png", png_bytes(image), "image/png")) for i, image in enumerate(test_images[0][:4])]
    by_name = client.post("/models/fashion/explain?version=2", files=files, headers=tokens(client)["predictor"])
    by_job = client.post("/jobs/1/explain?checkpoint=2", files=files, headers=tokens(client)["jobs"])
    assert by_name.status_code == 200, by_name.text
    body = by_name.json()
    assert by_name.headers["X-Model-Version"] == "2" and (body["model"], body["version"], body["alias"]) == (
        "fashion",
        2,
        None,
    )
    assert body["explanations"] == by_job.json()["explanations"] and body["checkpoint_epoch"] == 2
    png = client.post("/models/fashion/explain?version=1&format=png", files=files, headers=tokens(client)["predictor"])
    assert png.headers["content-type"] == "image/png" and png.headers["X-Model-Version"] == "1"
    assert png.content.startswith(b"\x89PNG")
    missing = client.post("/models/nope/explain", files=files, headers=tokens(client)["predictor"])
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
