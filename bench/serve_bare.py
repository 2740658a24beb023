"""The floor the serving table compares convlab's own routes with: a bare FastAPI app, one `async def` route that
answers the same JSON as convlab's GET /version, run by the same server (uvicorn) with the same options.

    .venv/bin/python -m uvicorn bench.serve_bare:app --port 8001 --log-level warning
"""

import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serve import free_port
from service import __version__

REPO = Path(__file__).resolve().parent.parent

app = FastAPI()
VERSION = {"name": "convlab", "version": __version__, "python": platform.python_version()}
VERSION |= {"torch": torch.__version__, "api": "1"}


@app.get("/version")
async def version() -> dict[str, str]:
    """What convlab's GET /version answers, with no middleware, dependency or response model."""
    return VERSION


REFUSED = b'{"detail": "overloaded"}'


async def refusing(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app that refuses every request at once (503, Retry-After) but GET /version: the cheapest answer
    a server can give, the floor bench/overload.py measures its load generator against."""
    if scope["type"] != "http":
        return
    ready = scope["method"] == "GET" and scope["path"] == "/version"
    headers = [(b"content-type", b"application/json"), *([] if ready else [(b"retry-after", b"1")])]
    await send({"type": "http.response.start", "status": 200 if ready else 503, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}" if ready else REFUSED})


@contextmanager
def bare_server(*, workers: int = 1, app: str = "bench.serve_bare:app") -> Iterator[str]:
    """`app` (this bare FastAPI app) under `uvicorn --workers N` on a free loopback port; stopped (SIGTERM) on
    exit."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", *(["--workers", str(workers)] if workers > 1 else [])]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/version", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{app} did not start")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
