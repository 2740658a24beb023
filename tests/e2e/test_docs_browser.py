"""/docs and /redoc render in headless Chromium with every operation listed and no request leaving the machine.

Chromium resolves every host but 127.0.0.1 to nothing (so nothing could leave), and its network log is read
to show that the page did not even try: every request made on behalf of the page goes to the live server.
Chromium's own background requests (update checks, account probes, autofill) have no page initiator and
are ignored; the resolver rule keeps them on the machine too.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test-deps)")

OPERATIONS = [
    "/jobs",
    "/jobs/{job_id}",
    "/jobs/{job_id}/events",
    "/jobs/{job_id}/predict",
    "/architectures",
    "/health",
    "/version",
]
SUMMARIES = ["Queue a training job", "Classify images with a trained job", "Follow a job live"]


def render(url: str, tmp_path: Path) -> tuple[str, list[dict]]:
    """The DOM after the page's scripts ran, and the URL requests from Chromium's network log."""
    netlog = tmp_path / "netlog.json"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--log-net-log={netlog}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = [e["params"] for e in log["events"] if e["type"] == start and "url" in e.get("params", {})]
    return result.stdout, requests


def page_requests(requests: list[dict], origin: str) -> list[dict]:
    """Requests the page made: its own loads and everything its HTML and scripts initiated."""
    return [r for r in requests if r.get("initiator", "").startswith("http") or r["url"].startswith(origin)]


def test_swagger_ui_lists_every_operation_offline(live_server, tmp_path):
    dom, requests = render(f"{live_server.url}/docs", tmp_path)
    for path in OPERATIONS:
        assert f'data-path="{path}"' in dom, f"Swagger UI did not render {path}"
    for summary in SUMMARIES:
        assert summary in dom
    assert 'class="btn authorize' in dom, "the bearer scheme gives the page its Authorize button"
    made = page_requests(requests, live_server.url)
    assert any(r["url"].endswith("/openapi.json") for r in made)
    assert any(r["url"].endswith("/swagger-ui-bundle.js") for r in made)
    for request in made:
        assert request["url"].startswith(live_server.url), f"the page requested {request['url']}"


def test_redoc_renders_the_operations_offline(live_server, tmp_path):
    dom, requests = render(f"{live_server.url}/redoc", tmp_path)
    for summary in SUMMARIES:
        assert summary in dom, f"ReDoc did not render {summary!r}"
    made = page_requests(requests, live_server.url)
    assert any(r["url"].endswith("/redoc.standalone.js") for r in made)
    for request in made:
        assert request["url"].startswith(live_server.url), f"the page requested {request['url']}"
