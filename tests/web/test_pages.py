"""The dashboard's pages over HTTP (auth off): tables that read without JavaScript, filters, pages, the policy."""

import io
import re

import pytest
from PIL import Image

from service.jobspec.spec import InitFrom
from service.jobspec.status import JobStatus
from service.storage.orm import Job
from service.web.templating import CONTENT_SECURITY_POLICY
from tests.api.conftest import SMALL_JOB

HTML = {"Accept": "text/html"}


@pytest.fixture
def queued(client):
    """Three queued jobs (ids 1..3); job 2 cancelled."""
    for seed in range(3):
        assert client.post("/jobs", json={**SMALL_JOB, "seed": seed}).status_code == 201
    assert client.post("/jobs/2/cancel").status_code == 200
    return client


def _job_links(html: str) -> list[str]:
    return re.findall(r'href="/ui/jobs/(\d+)"', html)


def test_jobs_page_lists_jobs_newest_first_in_a_plain_table(queued):
    page = queued.get("/", headers=HTML)
    assert page.status_code == 200 and "<table" in page.text
    assert _job_links(page.text) == ["3", "2", "1"]
    assert 'hx-trigger="every 2s"' in page.text  # queued jobs: the table refreshes itself


def test_jobs_page_filters_by_status(queued):
    page = queued.get("/?status=cancelled", headers=HTML)
    assert _job_links(page.text) == ["2"] and "with status cancelled" in page.text
    assert queued.get("/?status=exploded", headers=HTML).status_code == 422


def test_jobs_page_has_pages(client):
    for _ in range(21):
        job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
        client.post(f"/jobs/{job_id}/cancel")  # below the quota of active jobs
    first, second = client.get("/", headers=HTML).text, client.get("/?page=2", headers=HTML).text
    assert len(_job_links(first)) == 20 and _job_links(second) == ["1"]
    assert 'rel="next"' in first and 'rel="prev"' in second


def test_the_row_fragment_is_the_table_alone(queued):
    fragment = queued.get("/ui/jobs/rows", headers=HTML).text
    assert fragment.lstrip().startswith('<div id="job-table"') and '<nav aria-label="Main">' not in fragment


def test_new_job_form_carries_the_book_presets_and_labels_every_input(client):
    page = client.get("/ui/jobs/new", headers=HTML).text
    assert '"optimizer.lr": 0.9' in page or '"optimizer.lr": 1.0' in page
    inputs = re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', page)
    labels = set(re.findall(r'<label for="([^"]+)"', page))
    assert inputs and set(inputs) <= labels


def test_job_page_shows_the_spec_and_follows_from_the_last_event(queued):
    page = queued.get("/ui/jobs/1", headers=HTML).text
    assert "fashion_mnist" in page and "optimizer.lr" in page
    assert "bn_lenet on fashion_mnist</h1>" in page  # a built-in dataset has no page to link
    assert 'data-last-event-id="1"' in page
    assert queued.get("/ui/jobs/99", headers=HTML).status_code == 404


def test_compare_shows_only_differing_fields(queued):
    page = queued.get("/ui/compare?jobs=1,3", headers=HTML).text
    table = page[page.index('id="differing"') : page.index("</table>", page.index('id="differing"'))]
    assert "seed" in table and "architecture" not in table and "optimizer.lr" not in table


def test_compare_takes_ticked_boxes_and_refuses_bad_ids(queued):
    assert 'data-jobs="1,3"' in queued.get("/ui/compare?jobs=1&jobs=3", headers=HTML).text
    assert queued.get("/ui/compare?jobs=1,x", headers=HTML).status_code == 422
    assert queued.get("/ui/compare?jobs=" + ",".join(map(str, range(1, 18))), headers=HTML).status_code == 422
    assert queued.get("/ui/compare?jobs=1,3,1", headers=HTML).status_code == 422  # as GET /compare: no repeats
    assert queued.get("/ui/compare?jobs=1,77", headers=HTML).status_code == 404


def test_architectures_page_gives_the_layer_table_for_an_input_size(client):
    page = client.get("/ui/architectures?name=resnet18&input_size=96", headers=HTML).text
    assert "1×1×96×96" in page and "Parameters" in page
    assert client.get("/ui/architectures?name=resnet18&input_size=5", headers=HTML).status_code == 422


def test_pages_run_no_inline_script_and_keep_to_this_server(queued):
    paths = ("/", "/ui/jobs/new", "/ui/jobs/1", "/ui/compare?jobs=1,2", "/ui/lab", "/ui/architectures")
    for path in (*paths, "/ui/datasets", "/ui/models"):
        page = queued.get(path, headers=HTML)
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert page.headers["Referrer-Policy"] == "same-origin", path  # so the browser sends its Origin
        for tag in re.findall(r"<script[^>]*>", page.text):
            assert 'src="/static/' in tag or 'type="application/json"' in tag, (path, tag)
        assert "http://" not in page.text and "https://" not in page.text, path


def test_the_predict_box_can_fetch_a_test_image_of_the_jobs_dataset(queued):
    response = queued.get("/ui/jobs/1/samples/3.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (28, 28)
    missing = queued.get("/ui/jobs/1/samples/10000.png")  # Fashion-MNIST has 10,000 test images
    assert missing.status_code == 404 and "10000 test images" in missing.json()["detail"]


def _set_job(client, job_id: int, **fields) -> None:
    with client.app.state.session_factory() as session:
        job = session.get(Job, job_id)
        for name, value in fields.items():
            setattr(job, name, value)
        session.commit()


def _eta(page: str) -> str:
    found = re.search(r'<span id="eta">([^<]*)</span>', page)
    assert found is not None
    return found[1]


def test_job_page_shows_an_eta_only_while_the_job_runs(queued):
    _set_job(queued, 1, status=JobStatus.running, eta_seconds=42.4)
    assert _eta(queued.get("/ui/jobs/1", headers=HTML).text) == "42 s"
    for ended in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled):
        _set_job(queued, 1, status=ended)  # the last estimate is still stored
        assert _eta(queued.get("/ui/jobs/1", headers=HTML).text) == "-", ended


def test_the_nav_links_every_page(client):
    nav = client.get("/", headers=HTML).text.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    links = re.findall(r'<a href="([^"]+)"', nav)
    assert {"/ui/jobs/new", "/ui/compare", "/ui/lab", "/ui/datasets", "/ui/models", "/ui/architectures"} <= set(links)


def test_new_job_form_has_the_init_from_fields_of_job_request(client):
    page = client.get("/ui/jobs/new", headers=HTML).text
    fieldset = page[page.index('<fieldset id="init-from">') : page.index("</fieldset>")]
    names = set(re.findall(r'name="init_from\.(\w+)"', fieldset))
    assert names == {"job", "epoch", "model", "alias", "version", "freeze"}
    assert names <= set(InitFrom.model_fields)  # what the form sends is what the API takes
    assert 'id="f-init_from.epoch" name="init_from.epoch" value="best"' in fieldset
