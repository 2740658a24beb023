"""Playwright on Debian's chromium (no browser download): pages that may only talk to one server, and their errors.

Every request the browser makes goes through a route handler that lets requests to the server under test through
and aborts (and records) any other, so a test can assert that nothing left 127.0.0.1. Console errors and
uncaught page errors are recorded too.
"""

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP_REASON = "Debian's chromium is not installed (make test-deps)"
# Screenshots land here (git-ignored); the best are copied to docs/img by hand.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@dataclass
class Watched:
    """What a browser context did besides rendering: requests elsewhere (aborted), console and page errors."""

    origin: str
    elsewhere: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def take_errors(self, *, allowed: tuple[str, ...] = ()) -> list[str]:
        """Console errors since the last call, less those containing any of `allowed`."""
        errors, self.errors = self.errors, []
        return [e for e in errors if not any(a in e for a in allowed)]


@contextmanager
def browser_context(origin: str) -> Iterator[tuple["object", Watched]]:
    """A fresh context (own cookies) of a headless chromium limited to `origin`."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    watched = Watched(origin)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def gate(route) -> None:
            url = route.request.url
            if url.startswith(origin + "/") or url == origin or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                watched.elsewhere.append(url)
                route.abort()

        context.route("**/*", gate)

        def on_page(page) -> None:
            page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: watched.errors.append(f"uncaught: {e}"))

        context.on("page", on_page)
        try:
            yield context, watched
        finally:
            context.close()
            browser.close()


def wait_until(page, expression: str, *, timeout: float = 60.0) -> None:
    """Poll `expression` in the page until it is truthy (wait_for_function evaluates strings with eval, which the
    pages' Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout}s: {expression}"
        page.wait_for_timeout(200)


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot of `page` as build/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
