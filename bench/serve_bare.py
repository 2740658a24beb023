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


@contextmanager
def bare_server(*, workers: int = 1) -> Iterator[str]:
    """This app under `uvicorn --workers N` on a free loopback port; stopped (SIGTERM) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.serve_bare:app", "--host", "127.0.0.1", "--port", str(port)]
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
            raise RuntimeError("the bare FastAPI app did not start")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
