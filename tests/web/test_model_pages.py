"""The model registry's pages over HTTP (auth required) on a really trained job: the models list, a model's versions
with their metrics, its aliases with every move, the promote form, 404s, and who may see them."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.access import Scope
from service.config import Settings
from service.main import create_app
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import make_client
from tests.api.test_export import copy_database

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def client(
    trained_settings: Settings, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[TestClient]:
    """Model `fashion`: v1 (job 1, epoch 1) and v2 (epoch 2); `staging` made on v1 by alice and moved to v2 by bob,
    `prod` made on v2 by alice. Model `empty` has no version. Requests carry a models:read token."""
    state_dir = tmp_path_factory.mktemp("model-pages")
    copy_database(trained_settings, state_dir)
    with make_client(create_app(required_settings(state_dir, data_dir))) as client:
        alice = bearer(issue_token(client.app, "alice", Scope.models_read, Scope.models_write))
        bob = bearer(issue_token(client.app, "bob", Scope.models_write))
        assert client.post("/models", json={"name": "fashion", "description": "shirts"}, headers=alice).is_success
        assert client.post("/models", json={"name": "empty"}, headers=alice).is_success
        for epoch in (1, 2):
            assert client.post("/models/fashion/versions", json={"job_id": 1, "epoch": epoch}, headers=alice).is_success
        for alias, version, who in (("staging", 1, alice), ("staging", 2, bob), ("prod", 2, alice)):
            assert client.put(f"/models/fashion/aliases/{alias}", json={"version": version}, headers=who).is_success
        client.headers.update(bearer(issue_token(client.app, "reader", Scope.models_read)))
        yield client


def section(page: str, marker: str) -> str:
    start = page.index(marker)
    return page[start : page.index("</table>", start)]


def test_models_page_lists_each_model_with_its_versions_and_aliases(client):
    page = client.get("/ui/models", headers=HTML)
    assert page.status_code == 200
    assert re.findall(r'href="/ui/models/([^"]+)"', page.text) == ["empty", "fashion"]
    row = page.text[page.text.index('href="/ui/models/fashion"') :].split("</tr>")[0]
    assert "shirts" in row and "<td>2</td><td>v2</td>" in row
    assert "<code>prod</code> → v2" in row and "<code>staging</code> → v2" in row and "alice" in row


def test_model_page_shows_each_version_with_its_job_epoch_dataset_and_metrics(client):
    page = client.get("/ui/models/fashion", headers=HTML)
    assert page.status_code == 200
    versions = section(page.text, 'id="versions"')
    for number in (1, 2):
        stored = client.get(f"/models/fashion/versions/{number}").json()
        row = versions[versions.index(f'data-version="{number}"') :].split("</tr>")[0]
        assert '<a href="/ui/jobs/1">#1</a>' in row and f"<td>{stored['epoch']}</td><td>bn_lenet</td>" in row
        assert "<td>fashion_mnist</td>" in row and stored["checkpoint_sha256"] in row
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert f"{stored['metrics'][key]:.4f}" in row, key
    assert "<code>prod</code> <code>staging</code>" in versions  # both point at v2


def test_model_page_shows_every_move_of_each_alias(client):
    page = client.get("/ui/models/fashion", headers=HTML).text
    staging = section(page, 'id="history-staging"')
    moves = re.findall(r"<tr><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", staging)
    assert moves == [("alice", "(created)", "v1"), ("bob", "v1", "v2")]
    stored = client.get("/models/fashion/aliases/staging/history").json()
    assert stored[1]["moved_at"][:10] in staging
    prod = section(page, 'id="history-prod"')
    assert re.findall(r"<td>(v\d|\(created\))</td>", prod) == ["(created)", "v2"]


def test_model_page_has_the_promote_form_for_its_versions(client):
    page = client.get("/ui/models/fashion", headers=HTML).text
    form = page[page.index('<form id="promote"') : page.index("</form>", page.index('<form id="promote"'))]
    assert 'data-model="fashion"' in form and 'id="promote-alias"' in form
    assert re.findall(r'<option value="(\d+)">', form) == ["2", "1"]  # newest first
    assert re.findall(r'<option value="([a-z]+)">', form) == ["staging", "prod"]
    assert '<script src="/static/web/model.js"></script>' in page


def test_a_model_without_versions_or_aliases_answers_200(client):
    page = client.get("/ui/models/empty", headers=HTML)
    assert page.status_code == 200 and "No versions yet" in page.text and "No aliases yet" in page.text
    assert '<form id="promote"' not in page.text


def test_an_unknown_model_is_404(client):
    assert client.get("/ui/models/nothing", headers=HTML).status_code == 404


def test_models_page_without_models_says_so(tmp_path: Path, data_path: Path):
    with make_client(create_app(required_settings(tmp_path, data_path))) as fresh:
        reader = bearer(issue_token(fresh.app, "reader", Scope.models_read))
        page = fresh.get("/ui/models", headers={**HTML, **reader})
    assert page.status_code == 200 and "No models registered yet." in page.text


def test_model_pages_need_the_models_read_scope(client):
    jobs_only = bearer(issue_token(client.app, "jobs", Scope.jobs_read, Scope.jobs_write))
    for path in ("/ui/models", "/ui/models/fashion"):
        assert client.get(path, headers={**HTML, **jobs_only}).status_code == 403, path
        anonymous = client.get(path, headers={**HTML, "Authorization": ""}, follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/ui/signin"), path


def test_new_job_form_offers_registered_models_to_a_caller_who_may_read_them(client):
    writer = bearer(issue_token(client.app, "writer", Scope.jobs_write))
    both = bearer(issue_token(client.app, "both", Scope.jobs_write, Scope.models_read))
    assert '<option value="fashion">' not in client.get("/ui/jobs/new", headers={**HTML, **writer}).text
    page = client.get("/ui/jobs/new", headers={**HTML, **both}).text
    models = page[page.index('<datalist id="model-names">') : page.index("</datalist>", page.index("model-names"))]
    assert re.findall(r'<option value="([^"]+)">', models) == ["empty", "fashion"]
