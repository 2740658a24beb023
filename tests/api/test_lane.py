"""The serving lane (service/api/plumbing/lane.py) answers its requests exactly as FastAPI's routes do.

A request the lane takes is sent twice: as it is (the lane answers) and with one more query parameter that the
route ignores but the lane does not read (FastAPI answers). Status, body and the headers that matter must agree,
for answers and for every kind of refusal; the metrics label both by the route's template.
"""

import contextlib
import gc
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.access import Scope
from service.api.plumbing.cookies import TOKEN_COOKIE
from service.api.plumbing.lane import ROUTES, ServingLane, query_params
from service.config import Settings
from service.main import create_app
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import make_client, make_settings, png_bytes
from tests.api.test_export import copy_database, served_model

GRAY = png_bytes(np.zeros((28, 28), dtype=np.uint8))
PIXELS = {"pixels": [[[0] * 28] * 28]}
HEADERS = ("content-type", "retry-after", "x-model-version", "x-content-type-options", "referrer-policy")


@pytest.fixture
def client(fashion_client: TestClient) -> TestClient:
    """Auth off; model `fashion` has v1 (epoch 1) and v2 (epoch 2)."""
    return fashion_client


def both_ways(client: TestClient, method: str, path: str, **kwargs: object) -> None:
    """Send the request to the lane and, with a query parameter it does not read, to FastAPI; they must agree."""
    separator = "&" if "?" in path else "?"
    lane = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    routed = client.request(method, f"{path}{separator}via=fastapi", **kwargs)  # type: ignore[arg-type]
    assert lane.status_code == routed.status_code, (path, lane.text, routed.text)
    assert lane.content == routed.content, path
    for name in HEADERS:
        assert lane.headers.get(name) == routed.headers.get(name), (path, name)
    assert lane.headers["x-request-id"] != routed.headers["x-request-id"]  # each answer has an id of its own


@pytest.mark.parametrize("query", ["", "?top_k=5", "?checkpoint=1", "?checkpoint=1&top_k=10", "?checkpoint=9"])
def test_predict_by_job_answers_as_the_route_does(client: TestClient, query: str) -> None:
    path = f"/jobs/1/predict{query}"
    both_ways(client, "POST", path, json=PIXELS)
    both_ways(client, "POST", path, files=[("file", ("a.png", GRAY, "image/png"))])
    both_ways(client, "POST", path, content=GRAY, headers={"Content-Type": "image/png"})


@pytest.mark.parametrize("query", ["", "?alias=prod", "?version=1&top_k=2", "?alias=nope", "?version=7"])
def test_predict_by_name_answers_as_the_route_does(client: TestClient, query: str) -> None:
    both_ways(client, "POST", f"/models/fashion/predict{query}", json=PIXELS)
    both_ways(client, "POST", f"/models/fashion/predict{query}", content=GRAY, headers={"Content-Type": "image/png"})


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/jobs/1/predict", b"{not json", "application/json"),
        ("/jobs/1/predict", b"not an image", "image/png"),
        ("/jobs/1/predict", b"abc", "text/plain"),
        ("/jobs/1/predict", b'{"images": [], "pixels": []}', "application/json"),
        ("/jobs/424242/predict", GRAY, "image/png"),
        ("/models/unknown/predict", GRAY, "image/png"),
        ("/models/fashion/predict", b"", "image/png"),
    ],
)
def test_refusals_are_the_routes_own(client: TestClient, path: str, body: bytes, content_type: str) -> None:
    both_ways(client, "POST", path, content=body, headers={"Content-Type": content_type})


def test_version_and_liveness_answer_as_their_routes_do(client: TestClient) -> None:
    both_ways(client, "GET", "/version")
    both_ways(client, "GET", "/health/live")


def test_auth_refusals_and_admission_are_the_routes_own(
    trained_settings: Settings, tmp_path: Path, data_dir: Path
) -> None:
    copy_database(trained_settings, tmp_path)
    app = create_app(required_settings(tmp_path, data_dir))
    with make_client(app) as client:
        reader = issue_token(app, "reader", Scope.jobs_read)
        predictor = issue_token(app, "predictor", Scope.predict)
        for headers in ({}, bearer("cvl_unknown"), bearer(reader)):  # 401, 401, 403
            both_ways(client, "POST", "/jobs/1/predict", json=PIXELS, headers=headers)
        both_ways(client, "POST", "/jobs/1/predict", json=PIXELS, headers=bearer(predictor))
        assert client.post("/jobs/1/predict", json=PIXELS, headers=bearer(predictor)).status_code == 200
        client.cookies.set(TOKEN_COOKIE, predictor)  # a browser's session, without the forgery check's token
        both_ways(client, "POST", "/jobs/1/predict", json=PIXELS)
        assert client.post("/jobs/1/predict", json=PIXELS).status_code == 403


def test_while_shedding_refuses_the_lane_answers_the_routes_503_before_reading_the_token_or_the_body(
    trained_settings: Settings, tmp_path: Path, data_dir: Path
) -> None:
    """A flood is mostly refused, so a refusal must cost least: the lane gives the route's own 503 (same body and
    headers) before it checks the token or reads the body; FastAPI's route, past the lane, checks the token first."""
    copy_database(trained_settings, tmp_path)
    settings = required_settings(tmp_path, data_dir)
    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={"predict_max_wait_ms": 50})})
    app = create_app(settings)
    with TestClient(app) as client, contextlib.ExitStack() as in_flight:  # 503s expected: not make_client
        headers = bearer(issue_token(app, "predictor", Scope.predict))
        shedder = app.state.predictor.shedder
        shedder.gap = 0.01  # as if measured: 100 answers/s while busy, so the bound is one batch (its floor)
        for _ in range(int(shedder.bound())):
            in_flight.enter_context(shedder.admit())
        both_ways(client, "POST", "/jobs/1/predict", json=PIXELS, headers=headers)
        refused = client.post("/jobs/1/predict", json=PIXELS, headers=headers)
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert "overloaded" in refused.json()["detail"] and refused.headers["x-request-id"]
        garbage = {"content": b"not an image", "headers": {"Content-Type": "image/png"}}
        assert client.post("/jobs/1/predict", **garbage).status_code == 503  # no token, no image: still 503
        assert client.post("/jobs/1/predict?via=fastapi", **garbage).status_code == 401
        in_flight.close()
        assert client.post("/jobs/1/predict", **garbage).status_code == 401
        assert client.post("/jobs/1/predict", json=PIXELS, headers=headers).status_code == 200


def test_the_predict_rate_counts_lane_requests(trained_settings: Settings, tmp_path: Path, data_dir: Path) -> None:
    copy_database(trained_settings, tmp_path)
    app = create_app(required_settings(tmp_path, data_dir, predict_rate=1, predict_burst=2))
    with make_client(app) as client:
        headers = bearer(issue_token(app, "predictor", Scope.predict))
        answers = [client.post("/jobs/1/predict", json=PIXELS, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert answers[-1].headers["retry-after"] and "detail" in answers[-1].json()


def test_lane_answers_are_counted_under_the_route_template(client: TestClient) -> None:
    def counted() -> float:
        text = client.get("/metrics").text
        line = 'convlab_http_requests_total{method="POST",route="/jobs/{job_id}/predict",status="200"}'
        found = [row.split()[-1] for row in text.splitlines() if row.startswith(line)]
        return float(found[0]) if found else 0.0

    before = counted()
    assert client.post("/jobs/1/predict", json=PIXELS).status_code == 200
    assert counted() == before + 1


@pytest.mark.parametrize(
    ("method", "path", "query", "taken"),
    [
        ("POST", "/jobs/1/predict", b"", True),
        ("POST", "/jobs/7/predict", b"top_k=3&checkpoint=0", True),
        ("POST", "/models/fashion/predict", b"alias=prod&top_k=1", True),
        ("GET", "/version", b"", True),
        ("GET", "/health/live", b"", True),
        ("POST", "/jobs/1/predict", b"via=fastapi", False),  # a parameter the lane does not read
        ("POST", "/jobs/1/predict", b"top_k=3&top_k=4", False),  # given twice
        ("POST", "/jobs/1/predict", b"top_k=0", False),  # out of bounds: FastAPI's 422
        ("POST", "/jobs/1/predict", b"top_k=03", False),  # not plain
        ("POST", "/jobs/0/predict", b"", False),  # FastAPI's 422
        ("POST", "/jobs/1234567890123456789/predict", b"", False),  # near the id column's limit
        ("POST", "/models/fashion/predict", b"alias=a%20b", False),  # percent-encoded
        ("POST", "/models/" + "n" * 65 + "/predict", b"", False),  # FastAPI's 422 for a long name
        ("GET", "/jobs/1/predict", b"", False),  # FastAPI's 405
        ("HEAD", "/version", b"", False),
        ("GET", "/version/", b"", False),
    ],
)
def test_the_lane_takes_only_plain_requests(method: str, path: str, query: bytes, taken: bool) -> None:
    scope = {"type": "http", "method": method, "path": path, "query_string": query}
    assert (ServingLane._match(scope) is not None) is taken


def test_every_lane_route_stands_for_a_documented_operation(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for route in ROUTES:
        assert route.method.lower() in paths[route.template]


def test_query_params_reads_integers_within_bounds_and_plain_strings() -> None:
    allowed = {"top_k": (1, 10), "alias": None}
    assert query_params(b"top_k=10&alias=prod", allowed) == {"top_k": 10, "alias": "prod"}
    assert query_params(b"", allowed) == {}
    for refused in (b"top_k=11", b"top_k=-1", b"top_k=", b"alias=", b"alias=a+b", b"top_k", b"other=1"):
        assert query_params(refused, allowed) is None, refused


def test_a_model_loaded_while_the_app_runs_is_out_of_the_collectors_sight_too(
    trained_settings: Settings, tmp_path: Path, data_dir: Path
) -> None:
    """A checkpoint loaded after start-up is frozen with the start-up heap (service/inference/backends.py,
    freeze_survivors): otherwise every full collection walks it, and its exporter's leftovers, under load."""
    copy_database(trained_settings, tmp_path)
    app = create_app(make_settings(tmp_path, data_dir))
    with make_client(app) as client:
        frozen_at_start = gc.get_freeze_count()
        assert client.post("/jobs/1/predict", json=PIXELS).status_code == 200  # loads the checkpoint
        modules = list(served_model(app, 1).modules())
        tracked = {id(o) for o in gc.get_objects()}
        assert gc.get_freeze_count() > frozen_at_start
        assert not [m for m in modules if id(m) in tracked]


def test_what_is_alive_at_startup_is_out_of_the_collectors_sight_while_the_app_runs(settings: Settings) -> None:
    with make_client(create_app(settings)) as client:
        assert client.get("/version").status_code == 200
        assert gc.get_freeze_count() > 10_000  # torch, FastAPI and the app: a full collection walked them all
    assert gc.get_freeze_count() == 0  # collectable again once the app is gone
