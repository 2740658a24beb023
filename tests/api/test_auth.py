"""Access control over real HTTP: every route decides, 401/403 answers, tokens over HTTP, revocation, ownership."""

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service.access import Scope
from service.api.plumbing.routes import all_routes
from service.api.plumbing.security import PUBLIC_PATHS
from service.main import create_app
from tests.api.auth_helpers import (
    bearer,
    issue_token,
    required_scope,
    required_settings,
    run_together,
    undecided_routes,
)
from tests.api.conftest import SMALL_JOB, make_client

SAMPLE_VALUES = {"job_id": "1", "epoch": "1", "checkpoint_id": "1", "name": "nobody", "arch": "bn_lenet"}


@pytest.fixture
def app(tmp_path: Path, data_dir: Path) -> FastAPI:
    # The matrix below presents unknown tokens to every route: no lockout here (tests/api/test_limits.py has it).
    return create_app(required_settings(tmp_path, data_dir, max_auth_failures=10_000))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with make_client(app) as client:
        yield client


@pytest.fixture
def admin(client: TestClient, app: FastAPI) -> dict[str, str]:
    return bearer(issue_token(app, "root", Scope.admin))


def _operations(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    operations = []
    for route in all_routes(app):
        if isinstance(route, APIRoute):
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE_VALUES.get(m.group(1), "1"), route.path)
            operations += [(method, path, route) for method in sorted(route.methods - {"HEAD"})]
    return operations


def test_every_route_requires_a_scope_or_is_listed_public(app):
    assert undecided_routes(app) == []


def test_the_route_check_catches_an_undecided_route(app):
    app.add_api_route("/forgotten", lambda: {"open": True})
    assert undecided_routes(app) == ["/forgotten"]


def _message(response) -> str:
    """An error's message: `detail`, or `error` on the Open Inference Protocol's /v2 paths."""
    body = response.json()
    return str(body["error"] if response.request.url.path.startswith("/v2") else body["detail"])


def test_every_protected_operation_answers_401_without_a_token(client, app):
    for method, path, route in _operations(app):
        if required_scope(route) is None:
            continue
        response = client.request(method, path, json={})
        assert response.status_code == 401, f"{method} {path}"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "token" in _message(response)


def test_every_protected_operation_answers_401_to_an_unknown_token(client, app):
    for method, path, route in _operations(app):
        if required_scope(route) is not None:
            response = client.request(method, path, json={}, headers=bearer("cvl_" + "x" * 43))
            assert response.status_code == 401, f"{method} {path}"
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_every_protected_operation_answers_403_naming_the_missing_scope(client, app):
    for method, path, route in _operations(app):
        scope = required_scope(route)
        if scope is None:
            continue
        others = [s for s in Scope if s not in (scope, Scope.admin)]
        token = issue_token(app, f"lacks-{scope.value.replace(':', '-')}-{method.lower()}-{abs(hash(path))}", *others)
        response = client.request(method, path, json={}, headers=bearer(token))
        assert response.status_code == 403, f"{method} {path}"
        assert repr(scope.value) in _message(response)


def test_public_routes_answer_without_a_token(client):
    for path in sorted(PUBLIC_PATHS - {"/static", "/docs/oauth2-redirect", "/ui/signout"}):
        assert client.get(path).status_code == 200, path
    # POST only: a link cannot sign a browser out
    assert client.post("/ui/signout", follow_redirects=False).status_code == 303
    assert client.get("/static/swagger-ui/swagger-ui.css").status_code == 200


def test_each_scope_admits_its_operations(client, app):
    headers = {scope: bearer(issue_token(app, f"only-{scope.name}", scope)) for scope in Scope}
    assert client.get("/jobs", headers=headers[Scope.jobs_read]).status_code == 200
    assert client.get("/architectures", headers=headers[Scope.jobs_read]).status_code == 200
    assert client.post("/jobs", json=SMALL_JOB, headers=headers[Scope.jobs_write]).status_code == 201
    assert client.get("/functions", headers=headers[Scope.lab]).status_code == 200
    assert client.post("/jobs/999/predict", json={"pixels": [[0]]}, headers=headers[Scope.predict]).status_code == 404
    for scope in Scope:  # admin implies every scope
        assert client.get("/tokens", headers=headers[Scope.admin]).status_code == 200
        assert client.get("/jobs", headers=headers[scope]).status_code == (
            200 if scope.name in ("jobs_read", "admin") else 403
        )


def test_tokens_over_http_show_the_secret_once_and_list_none(client, admin):
    created = client.post("/tokens", json={"name": "alice", "scopes": ["jobs:read"]}, headers=admin)
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("cvl_") and len(secret) >= 40
    listed = client.get("/tokens", headers=admin)
    assert listed.status_code == 200 and secret not in listed.text
    alice = next(t for t in listed.json() if t["name"] == "alice")
    assert alice["scopes"] == ["jobs:read"] and secret.startswith(alice["hint"])
    assert client.get("/jobs", headers=bearer(secret)).status_code == 200
    assert client.post("/tokens", json={"name": "alice", "scopes": ["lab"]}, headers=admin).status_code == 409


def test_token_requests_are_validated(client, admin):
    assert client.post("/tokens", json={"name": "bad name", "scopes": ["lab"]}, headers=admin).status_code == 422
    assert client.post("/tokens", json={"name": "x", "scopes": []}, headers=admin).status_code == 422
    assert client.post("/tokens", json={"name": "x", "scopes": ["root"]}, headers=admin).status_code == 422
    assert client.delete("/tokens/nobody", headers=admin).status_code == 404


def test_revocation_takes_effect_on_the_next_request(client, app, admin):
    secret = issue_token(app, "bob", Scope.jobs_read)
    assert client.get("/jobs", headers=bearer(secret)).status_code == 200
    assert client.delete("/tokens/bob", headers=admin).status_code == 204
    response = client.get("/jobs", headers=bearer(secret))
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_last_use_is_recorded(client, app, admin):
    secret = issue_token(app, "carol", Scope.jobs_read)
    assert next(t for t in client.get("/tokens", headers=admin).json() if t["name"] == "carol")["last_used_at"] is None
    client.get("/jobs", headers=bearer(secret))
    assert next(t for t in client.get("/tokens", headers=admin).json() if t["name"] == "carol")["last_used_at"]


def test_jobs_write_changes_only_its_own_jobs_and_admin_any(client, app, admin):
    alice = bearer(issue_token(app, "alice", Scope.jobs_read, Scope.jobs_write))
    bob = bearer(issue_token(app, "bob", Scope.jobs_read, Scope.jobs_write))
    job = client.post("/jobs", json=SMALL_JOB, headers=alice).json()
    assert job["owner"] == "alice"
    assert client.get(f"/jobs/{job['id']}", headers=bob).status_code == 200  # a team's shared lab: all can read
    refused = client.post(f"/jobs/{job['id']}/cancel", headers=bob)
    assert refused.status_code == 403 and "another token" in refused.json()["detail"]
    assert client.post(f"/jobs/{job['id']}/cancel", headers=alice).status_code == 200
    assert client.delete(f"/jobs/{job['id']}", headers=bob).status_code == 403
    other = client.post("/jobs", json=SMALL_JOB, headers=bob).json()
    assert client.post(f"/jobs/{other['id']}/cancel", headers=admin).status_code == 200
    assert client.delete(f"/jobs/{other['id']}", headers=admin).status_code == 204
    assert client.delete(f"/jobs/{job['id']}", headers=alice).status_code == 204


def test_openapi_declares_the_bearer_scheme_on_protected_operations(client):
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["token"]["description"],
    }
    assert document["paths"]["/jobs"]["post"]["security"] == [{"token": []}]
    assert "401" in document["paths"]["/jobs"]["post"]["responses"]
    assert "security" not in document["paths"]["/health"]["get"]


def test_html_answers_carry_security_headers_and_docs_keep_their_csp(client):
    docs = client.get("/docs")
    assert docs.headers["X-Content-Type-Options"] == "nosniff"
    assert docs.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'self'" in docs.headers["Content-Security-Policy"]
    assert "frame-ancestors" in docs.headers["Content-Security-Policy"]
    redirect = client.get("/docs/oauth2-redirect")
    assert redirect.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert client.get("/health").headers["X-Content-Type-Options"] == "nosniff"


def test_cors_is_off_unless_an_allowlist_is_configured(client, tmp_path, data_dir):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/jobs", headers=preflight).headers
    settings = required_settings(tmp_path / "cors", data_dir, cors_origins=["https://lab.example"])
    with TestClient(create_app(settings)) as allowed:
        good = allowed.options("/jobs", headers={**preflight, "Origin": "https://lab.example"})
        assert good.headers["access-control-allow-origin"] == "https://lab.example"
        assert "access-control-allow-origin" not in allowed.options("/jobs", headers=preflight).headers


def test_logs_of_an_authenticated_session_hold_no_token(client, app, admin, caplog):
    caplog.set_level(logging.DEBUG)
    secret = client.post("/tokens", json={"name": "dave", "scopes": ["jobs:read"]}, headers=admin).json()["token"]
    client.get("/jobs", headers=bearer(secret))
    client.get("/jobs", headers=bearer(secret + "x"))
    client.delete("/tokens/dave", headers=admin)
    client.get("/jobs", headers=bearer(secret))
    assert caplog.records, "the session logged something"
    assert secret not in caplog.text and admin["Authorization"].split()[1] not in caplog.text


def test_concurrent_first_uses_of_tokens_never_fail(client, app):
    """Recording a token's first use writes; on SQLite that write runs in its own locked transaction."""
    secrets = [issue_token(app, f"parallel-{i}", Scope.jobs_read, Scope.jobs_write) for i in range(8)]
    statuses: list[int] = []

    def use(secret: str) -> None:
        for _ in range(3):
            statuses.append(client.post("/jobs", json=SMALL_JOB, headers=bearer(secret)).status_code)
            statuses.append(client.get("/jobs", headers=bearer(secret)).status_code)

    run_together(use, secrets)
    assert sorted(set(statuses)) == [200, 201] and len(statuses) == 48


def test_concurrent_token_creations_and_revocations_never_fail(client, admin):
    statuses: list[int] = []

    def create_and_revoke(i: int) -> None:
        body = {"name": f"burst-{i % 3}", "scopes": ["lab"]}
        statuses.append(client.post("/tokens", json=body, headers=admin).status_code)
        statuses.append(client.delete(f"/tokens/burst-{i % 3}", headers=admin).status_code)

    run_together(create_and_revoke, range(9))
    assert set(statuses) <= {201, 204, 404, 409} and 201 in statuses
