"""Predict by name reads what a name means in the database for every request, even though this process keeps
the full resolution: an alias move, a deleted version and a deleted job all show on the next request."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import png_bytes

PIXELS = {"pixels": [[[0] * 28] * 28]}


@pytest.fixture
def client(fashion_client: TestClient) -> TestClient:
    """Auth off; model `fashion` has v1 (epoch 1) and v2 (epoch 2)."""
    return fashion_client


def served(client: TestClient, query: str = "") -> int:
    answer = client.post(f"/models/fashion/predict{query}", json=PIXELS)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["version"])


def test_each_move_shows_on_the_next_request_after_the_name_was_resolved(client: TestClient) -> None:
    seen = []
    for version in (1, 2, 1, 2):
        assert client.put("/models/fashion/aliases/prod", json={"version": version}).status_code == 200
        seen.append((served(client), served(client)))
    assert seen == [(1, 1), (2, 2), (1, 1), (2, 2)]
    assert served(client, "?version=1") == 1


def test_deleting_the_job_of_a_resolved_version_makes_the_next_request_409(client: TestClient) -> None:
    client.put("/models/fashion/aliases/prod", json={"version": 2})
    assert served(client) == 2
    assert client.delete("/jobs/1").status_code == 204
    refused = client.post("/models/fashion/predict", json=PIXELS)
    assert refused.status_code == 409 and "deleted" in refused.json()["detail"]


def test_deleting_a_version_resolved_by_number_makes_the_next_request_404(client: TestClient) -> None:
    client.put("/models/fashion/aliases/prod", json={"version": 2})
    assert served(client, "?version=1") == 1
    assert client.delete("/models/fashion/versions/1").status_code == 204
    assert client.post("/models/fashion/predict?version=1", json=PIXELS).status_code == 404
    assert client.post("/models/fashion/predict?alias=nope", json=PIXELS).status_code == 404


def test_a_raw_png_body_predicts_by_name_as_the_upload_does(client: TestClient) -> None:
    client.put("/models/fashion/aliases/prod", json={"version": 1})
    image = png_bytes(np.full((28, 28), 200, dtype=np.uint8))
    raw = client.post("/models/fashion/predict", content=image, headers={"content-type": "image/png"})
    upload = client.post("/models/fashion/predict", files=[("file", ("x.png", image, "image/png"))])
    assert raw.status_code == 200 and raw.json() == upload.json() and raw.headers["X-Model-Version"] == "1"


def test_the_answer_after_a_move_is_the_new_versions_own_not_the_last_one_s(client: TestClient) -> None:
    """This process remembers what a name meant; after a move the answer is still the version the read found:
    its probabilities equal that epoch's predict by job."""
    image = {"pixels": [np.linspace(0, 1, 28 * 28).reshape(28, 28).tolist()]}

    def top(path: str) -> list[tuple[int, float]]:
        answer = client.post(path, json=image).json()
        return [(p["class_index"], round(p["probability"], 6)) for p in answer["predictions"][0]["top_k"]]

    own = {epoch: top(f"/jobs/1/predict?checkpoint={epoch}") for epoch in (1, 2)}
    assert own[1] != own[2]
    for version in (1, 2, 1):
        assert client.put("/models/fashion/aliases/prod", json={"version": version}).status_code == 200
        assert top("/models/fashion/predict") == own[version]


def test_a_bad_body_for_a_name_that_no_longer_resolves_is_its_404(client: TestClient) -> None:
    """The name's read comes first: a version deleted since this process last resolved it is a 404 even when the
    body is not an image (else a 422)."""
    assert served(client, "?version=1") == 1
    assert client.delete("/models/fashion/versions/1").status_code == 204
    ragged = {"pixels": [[[0] * 28, [0] * 5]]}
    refused = client.post("/models/fashion/predict?version=1", json=ragged)
    assert refused.status_code == 404, refused.text
    assert client.post("/models/fashion/predict?version=2", json=ragged).status_code == 422
