"""A live `convlab serve --api-workers 2` (one real worker, authentication required) on real Fashion-MNIST.

Two API processes share one port, each with its own model cache and batcher. Requests on fresh connections land
on either process; whichever it is, the answers must be the same: the bootstrap token (made and printed once,
by the launcher) and a browser's sign-in work everywhere, the event stream follows a job to its end and resumes
after Last-Event-ID, predictions from uploads and base64 JSON agree with a batch answer, and every scrape of
/metrics counts the requests of both processes.
"""

import base64
import io
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from service.training.datasets import load_dataset
from tests.e2e.conftest import free_port, read_events, serve_command, serve_env, stop, wait_until_healthy

JOB = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 2,
    "batch_size": 128,
    "optimizer": {"name": "adam", "lr": 0.01},
    "train_subset": 1024,
    "test_subset": 256,
    "seed": 0,
}
TOKEN = re.compile(r"cvl_[A-Za-z0-9_-]{43}")
FOLLOW_SECONDS = 300
SPREAD = 16  # requests sent side by side on fresh connections, so that both processes answer some


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    token: str
    stderr: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Server]:
    state_dir = tmp_path_factory.mktemp("api-workers")
    port = free_port()
    env = serve_env(
        state_dir, data_dir, CONVLAB_AUTH="required", CONVLAB_EVENTS_POLL_SECONDS="0.2", CONVLAB_POLL_SECONDS="0.2"
    )
    stderr = state_dir / "serve.err"
    with stderr.open("wb") as err:
        command = serve_command(port, "--workers", "1", "--api-workers", "2")
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, stderr)
        tokens = TOKEN.findall(stderr.read_text())
        assert len(tokens) == 1, f"the bootstrap token is printed exactly once, not {len(tokens)} times"
        yield Server(url, process.pid, tokens[0], stderr)
    finally:
        stop(process)


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def fresh(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request on a connection of its own (a kept-alive connection would stay with one process)."""
    headers = {**auth(server), **kwargs.pop("headers", {})}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=120, **kwargs)


def side_by_side(count: int, call: Any) -> list[Any]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def follow_events(server: Server, job_id: int, after: int = 0) -> list[dict[str, Any]]:
    """Read /events (resuming after `after`) until the server closes the stream; each event as {event, id, data}."""
    headers = {**auth(server), "Last-Event-ID": str(after)}
    with httpx.stream("GET", f"{server.url}/jobs/{job_id}/events", headers=headers, timeout=FOLLOW_SECONDS) as response:
        assert response.status_code == 200
        return read_events(response.iter_lines())


@pytest.fixture(scope="module")
def finished_job(server: Server) -> tuple[int, list[dict[str, Any]]]:
    created = fresh(server, "POST", "/jobs", json=JOB)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    return job_id, follow_events(server, job_id)


def api_processes(pid: int) -> int:
    """How many API processes uvicorn's supervisor (the `serve` process `pid`) runs: its spawned children."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    cmdlines = [Path(f"/proc/{child}/cmdline").read_bytes() for child in children if os.path.exists(f"/proc/{child}")]
    return sum(b"spawn_main" in cmdline for cmdline in cmdlines)


def test_two_api_processes_share_the_port_and_accept_the_one_bootstrap_token(server):
    assert api_processes(server.pid) == 2
    answers = side_by_side(SPREAD, lambda: fresh(server, "GET", "/jobs").status_code)
    assert answers == [200] * SPREAD
    refused = side_by_side(4, lambda: fresh(server, "GET", "/jobs", headers={"Authorization": "Bearer cvl_x"}))
    assert [r.status_code for r in refused] == [401] * 4


def test_a_browser_signed_in_on_one_process_is_signed_in_on_all(server):
    signed = httpx.post(f"{server.url}/ui/signin", data={"token": server.token, "next": "/"}, timeout=60)
    assert signed.status_code == 303, signed.text
    cookies = dict(signed.cookies)
    pages = side_by_side(8, lambda: httpx.get(f"{server.url}/", cookies=cookies, timeout=60).status_code)
    assert pages == [200] * 8


def test_events_stream_a_job_to_its_end_and_resume_on_any_process(server, finished_job):
    job_id, events = finished_job
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
    assert [e["data"]["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    stored = [e for e in events if "id" in e]
    middle = int(stored[len(stored) // 2]["id"])
    resumed = side_by_side(4, lambda: follow_events(server, job_id, after=middle))
    expected = [(e["id"], e["event"]) for e in stored if int(e["id"]) > middle]
    for stream in resumed:
        assert [(e["id"], e["event"]) for e in stream] == expected


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def classes(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [p["class_index"] for p in response.json()["predictions"]]


def test_uploads_and_base64_predictions_agree_across_processes(server, finished_job, data_dir):
    job_id, _ = finished_job
    images = load_dataset("fashion_mnist", data_dir, train_subset=1, test_subset=SPREAD).test.images[:, 0].numpy()
    path = f"/jobs/{job_id}/predict"
    batch = classes(fresh(server, "POST", path, json={"pixels": images.tolist()}))
    with ThreadPoolExecutor(max_workers=SPREAD) as pool:
        uploads = list(pool.map(lambda im: classes(fresh(server, "POST", path, files={"file": png(im)}))[0], images))
        encoded = [base64.b64encode(png(im)).decode() for im in images]
        by_json = list(pool.map(lambda text: classes(fresh(server, "POST", path, json={"images": [text]}))[0], encoded))
    assert uploads == by_json == batch


def version_requests(server: Server) -> float:
    scraped = fresh(server, "GET", "/metrics")
    assert scraped.status_code == 200
    for family in text_string_to_metric_families(scraped.text):
        if family.name == "convlab_http_requests":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels["route"] == "/version" and s.labels["status"] == "200"
            )
    raise AssertionError("no convlab_http_requests family")


def test_every_scrape_counts_the_requests_of_both_processes(server):
    before = side_by_side(4, lambda: version_requests(server))
    assert len(set(before)) == 1
    assert side_by_side(SPREAD, lambda: fresh(server, "GET", "/version").status_code) == [200] * SPREAD
    after = side_by_side(4, lambda: version_requests(server))
    assert after == [before[0] + SPREAD] * 4
