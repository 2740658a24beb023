"""The dashboard on a server that requires tokens: a browser is sent to sign in, signs in with a token, and then
the pages' own calls to the JSON API (reads, a lab run, a job submitted through the form) work by the cookie."""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import CHROMIUM, SKIP_REASON, browser_context, screenshot, wait_until
from tests.e2e.conftest import stop
from tests.e2e.test_auth_live import Server, start_server

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Server]:
    process, server = start_server(tmp_path_factory.mktemp("dashboard-auth"), data_dir)
    try:
        yield server
    finally:
        stop(process)


def make_token(server: Server, name: str, *scopes: str) -> str:
    command = [sys.executable, "-m", "service.cli", "token", "create", name]
    command += [arg for scope in scopes for arg in ("--scope", scope)]
    done = subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_sign_in_with_a_token_then_use_the_pages(server):
    token = make_token(server, "browser", "jobs:read", "jobs:write", "lab")
    # The first Hessian of a fresh API process imports torch.func for seconds (see test_dashboard_browser.py).
    warm = {"function": "x**2", "box": [[-1, 1]]}
    httpx.post(f"{server.url}/analysis/convexity", json=warm, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    with browser_context(server.url) as (context, watched):
        page = context.new_page()
        page.goto(f"{server.url}/ui/jobs/new")
        assert "/ui/signin?next=" in page.url
        page.fill("#token", "cvl_" + "x" * 43)
        page.click("main button[type=submit]")
        assert page.inner_text("#token-error") == "That token is unknown or was revoked."
        watched.take_errors(allowed=("status of 401",))  # the refused sign-in answers 401, as it should
        page.fill("#token", token)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{server.url}/ui/jobs/new")
        assert "token" not in page.evaluate("document.cookie").split("=")[0]  # HttpOnly: scripts cannot see it
        screenshot(page, "signin-new-job")
        page.fill("#f-epochs", "1")
        page.fill("#f-train_subset", "512")
        page.click("#submit-job")  # POST /jobs by cookie: passes the double-submit check
        page.wait_for_url(re.compile(r".*/ui/jobs/\d+$"))
        assert page.inner_text("#status") == "queued"  # no worker on this server
        page.goto(f"{server.url}/ui/lab")
        wait_until(page, "Number(document.querySelector('#lab-contour').dataset.drawn) >= 1", timeout=120)
        assert watched.take_errors() == []
        assert watched.elsewhere == []
