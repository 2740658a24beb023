"""The datasets pages over HTTP with real uploads (Fashion-MNIST images as class folders): the list, one version's
facts, counts and sample grid, 404s, the new-job form's dataset choice, and who may see them."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.access import Scope
from service.main import create_app
from tests.api.archives import class_folder_name, fashion_files, zip_bytes
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import make_client

HTML = {"Accept": "text/html"}
ZIP = {"Content-Type": "application/zip"}


@pytest.fixture(scope="module")
def archives(data_dir: Path) -> tuple[bytes, bytes]:
    """Two versions' archives of real images: the first 120 training images, then the first 80."""
    return zip_bytes(fashion_files(data_dir, train=120)), zip_bytes(fashion_files(data_dir, train=80))


def upload(client: TestClient, body: bytes, name: str = "shirts", **headers: str) -> dict:
    response = client.post("/datasets", params={"name": name, "size": 28}, content=body, headers={**ZIP, **headers})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def uploaded(client: TestClient, archives: tuple[bytes, bytes]) -> TestClient:
    """`shirts@1` (120 images) and `shirts@2` (80 images), uploaded through the API (auth off)."""
    for body in archives:
        upload(client, body)
    return client


def test_datasets_page_lists_every_version_with_its_counts(uploaded):
    page = uploaded.get("/ui/datasets", headers=HTML)
    assert page.status_code == 200
    assert re.findall(r'href="/ui/datasets/shirts/versions/(\d+)"', page.text) == ["1", "2"]
    rows = re.findall(r"<tr><th scope=\"row\">.*?</tr>", page.text, flags=re.S)
    first = uploaded.get("/datasets/shirts/versions/1").json()
    assert f"<td>{first['train_images']}</td><td>{first['test_images']}</td>" in rows[0]
    assert "28×28×1" in rows[0] and "2 versions" in page.text


def test_datasets_page_without_uploads_says_so(client):
    page = client.get("/ui/datasets", headers=HTML)
    assert page.status_code == 200 and "No datasets uploaded yet." in page.text


def test_dataset_page_shows_the_stored_facts(uploaded):
    stored = uploaded.get("/datasets/shirts/versions/2").json()
    page = uploaded.get("/ui/datasets/shirts/versions/2", headers=HTML).text
    assert "Dataset shirts@2" in page and stored["sha256"] in page
    facts = page[page.index('id="facts"') : page.index("</table>", page.index('id="facts"'))]
    assert f"{stored['stored_bytes']:,} B" in facts and "28×28 pixels" in facts
    assert f"{stored['mean'][0]:.4f}" in facts and f"{stored['std'][0]:.4f}" in facts
    assert stored["split"] in facts and stored["owner"] in facts
    assert stored["created_at"][:10] in facts


def test_dataset_page_counts_each_class_per_split(uploaded):
    stored = uploaded.get("/datasets/shirts/versions/1").json()
    page = uploaded.get("/ui/datasets/shirts/versions/1", headers=HTML).text
    counts = page[page.index('id="counts"') : page.index("</table>", page.index('id="counts"'))]
    for label, name in enumerate(stored["classes"]):
        split = stored["counts"][name]
        row = f'<tr><td>{label}</td><th scope="row">{name}</th><td>{split["train"]}</td><td>{split["test"]}</td></tr>'
        assert row in counts
    assert class_folder_name(9) in stored["classes"]  # the real class folders, not made-up names


def test_dataset_page_shows_the_sample_grid_the_api_draws(uploaded):
    page = uploaded.get("/ui/datasets/shirts/versions/1", headers=HTML).text
    source = re.search(r'<img id="samples" src="([^"]+)"', page)
    assert source is not None and source[1] == "/datasets/shirts/versions/1/samples.png"
    grid = uploaded.get(source[1])
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"


def test_dataset_page_links_the_other_versions_and_the_form(uploaded):
    page = uploaded.get("/ui/datasets/shirts/versions/2", headers=HTML).text
    assert 'href="/ui/datasets/shirts/versions/1"' in page and "<strong>@2</strong>" in page
    assert 'href="/ui/jobs/new?dataset=shirts%402"' in page


def test_an_unknown_dataset_or_version_is_404(uploaded):
    assert uploaded.get("/ui/datasets/shirts/versions/3", headers=HTML).status_code == 404
    assert uploaded.get("/ui/datasets/pants/versions/1", headers=HTML).status_code == 404
    assert uploaded.get("/ui/datasets/Shirts!/versions/1", headers=HTML).status_code == 422


def test_new_job_form_offers_uploaded_datasets_by_name_and_version(uploaded):
    page = uploaded.get("/ui/jobs/new", headers=HTML).text
    select = page[page.index('id="f-dataset"') : page.index("</select>", page.index('id="f-dataset"'))]
    values = re.findall(r'<option value="([^"]+)"', select)
    assert values == ["fashion_mnist", "mnist", "cifar10", "synthetic", "shirts", "shirts@2", "shirts@1"]
    assert "shirts (latest, now @2)" in select


def test_a_job_can_train_on_the_formed_choice(uploaded):
    """What the form sends for an uploaded dataset (`name`) is admitted and pinned to the latest version."""
    job = uploaded.post("/jobs", json={"architecture": "lenet", "dataset": "shirts", "epochs": 1, "resize": 28})
    assert job.status_code == 201, job.text
    assert job.json()["spec"]["dataset"] == "shirts@2"
    page = uploaded.get("/ui/datasets/shirts/versions/2", headers=HTML).text
    assert f"job {job.json()['id']}" in page  # used by
    job_page = uploaded.get(f"/ui/jobs/{job.json()['id']}", headers=HTML).text
    assert 'on <a href="/ui/datasets/shirts/versions/2">shirts@2</a></h1>' in job_page


@pytest.fixture
def guarded(tmp_path: Path, data_dir: Path, archives: tuple[bytes, bytes]) -> Iterator[TestClient]:
    """Auth required; `shirts@1` uploaded by a token that may write datasets."""
    with make_client(create_app(required_settings(tmp_path, data_dir))) as client:
        writer = issue_token(client.app, "uploader", Scope.datasets_write)
        upload(client, archives[0], **bearer(writer))
        yield client


def test_dataset_pages_need_the_datasets_read_scope(guarded):
    jobs_only = bearer(issue_token(guarded.app, "jobs", Scope.jobs_read, Scope.jobs_write))
    reader = bearer(issue_token(guarded.app, "reader", Scope.datasets_read))
    for path in ("/ui/datasets", "/ui/datasets/shirts/versions/1"):
        assert guarded.get(path, headers={**HTML, **jobs_only}).status_code == 403, path
        assert guarded.get(path, headers={**HTML, **reader}).status_code == 200, path
        assert guarded.get(path, headers=HTML, follow_redirects=False).status_code == 303, path
    assert "uploader" in guarded.get("/ui/datasets/shirts/versions/1", headers={**HTML, **reader}).text


def test_the_form_lists_uploads_only_to_a_caller_who_may_read_them(guarded):
    jobs_only = bearer(issue_token(guarded.app, "jobs", Scope.jobs_write))
    both = bearer(issue_token(guarded.app, "both", Scope.jobs_write, Scope.datasets_read))
    assert 'value="shirts@1"' not in guarded.get("/ui/jobs/new", headers={**HTML, **jobs_only}).text
    assert 'value="shirts@1"' in guarded.get("/ui/jobs/new", headers={**HTML, **both}).text
