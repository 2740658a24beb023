"""Signing a browser in: the HttpOnly cookie, the API accepting it, and the forgery check on state changes."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.access import Scope
from service.api.plumbing.cookies import CSRF_COOKIE, CSRF_HEADER, TOKEN_COOKIE
from service.main import create_app
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import SMALL_JOB, make_client

HTML = {"Accept": "text/html"}


@pytest.fixture
def app(tmp_path: Path, data_dir: Path) -> FastAPI:
    return create_app(required_settings(tmp_path, data_dir))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with make_client(app) as client:
        yield client


def sign_in(client: TestClient, token: str, target: str = "/") -> None:
    response = client.post("/ui/signin", data={"token": token, "next": target}, follow_redirects=False)
    assert response.status_code == 303, response.text


def test_sign_in_sets_an_http_only_strict_cookie_and_returns_to_the_page(client, app):
    token = issue_token(app, "alice", Scope.jobs_read)
    response = client.post("/ui/signin", data={"token": token, "next": "/ui/lab"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/lab"
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(TOKEN_COOKIE + "="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Secure" not in session  # plain http here
    csrf = next(c for c in cookies if c.startswith(CSRF_COOKIE + "="))
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf


def test_sign_in_over_https_marks_the_cookie_secure(app):
    with TestClient(app, base_url="https://dash.example") as client:
        token = issue_token(app, "alice", Scope.jobs_read)
        response = client.post("/ui/signin", data={"token": token}, follow_redirects=False)
    assert all("Secure" in c for c in response.headers.get_list("set-cookie"))


def test_unknown_token_shows_the_form_again_with_the_reason(client):
    response = client.post("/ui/signin", data={"token": "cvl_" + "x" * 43}, follow_redirects=False)
    assert response.status_code == 401 and "unknown or was revoked" in response.text
    assert TOKEN_COOKIE not in response.headers.get("set-cookie", "")


def test_sign_in_never_redirects_off_this_server(client, app):
    token = issue_token(app, "alice", Scope.jobs_read)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = client.post("/ui/signin", data={"token": token, "next": target}, follow_redirects=False)
        assert response.headers["location"] == "/", target


def test_sign_in_from_another_site_is_refused(client, app):
    token = issue_token(app, "alice", Scope.jobs_read)
    response = client.post("/ui/signin", data={"token": token}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


def test_pages_send_a_browser_to_sign_in_and_an_api_client_a_401(client):
    response = client.get("/ui/compare?jobs=1,2", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/signin?next=%2Fui%2Fcompare%3Fjobs%3D1%2C2"
    assert client.get("/ui/compare").status_code == 401


def test_the_cookie_authenticates_api_reads_and_pages(client, app):
    sign_in(client, issue_token(app, "alice", Scope.jobs_read))
    assert client.get("/jobs").status_code == 200
    page = client.get("/", headers=HTML)
    assert page.status_code == 200 and "<table" in page.text


def test_a_cookie_state_change_needs_the_double_submitted_token(client, app):
    sign_in(client, issue_token(app, "alice", Scope.jobs_write, Scope.jobs_read))
    refused = client.post("/jobs", json=SMALL_JOB)
    assert refused.status_code == 403 and CSRF_HEADER in refused.json()["detail"]
    forged = client.post("/jobs", json=SMALL_JOB, headers={CSRF_HEADER: "guessed"})
    assert forged.status_code == 403
    csrf = client.cookies[CSRF_COOKIE]
    cross_site = client.post("/jobs", json=SMALL_JOB, headers={CSRF_HEADER: csrf, "Origin": "https://evil.example"})
    assert cross_site.status_code == 403 and "Origin" in cross_site.json()["detail"]
    assert client.post("/jobs", json=SMALL_JOB, headers={CSRF_HEADER: csrf}).status_code == 201


def test_the_bearer_header_needs_no_forgery_check_and_wins_over_the_cookie(client, app):
    writer = issue_token(app, "writer", Scope.jobs_write)
    sign_in(client, issue_token(app, "reader", Scope.jobs_read))
    answer = client.post("/jobs", json=SMALL_JOB, headers=bearer(writer))
    assert answer.status_code == 201 and answer.json()["owner"] == "writer"


def test_a_page_needs_its_scope(client, app):
    sign_in(client, issue_token(app, "reader", Scope.jobs_read))
    assert client.get("/ui/lab", headers=HTML).status_code == 403
    assert client.get("/ui/architectures", headers=HTML).status_code == 200


def test_sign_out_forgets_the_cookie(client, app):
    sign_in(client, issue_token(app, "alice", Scope.jobs_read))
    assert client.post("/ui/signout", follow_redirects=False).status_code == 303
    assert client.get("/jobs").status_code == 401
