"""wrk as the load generator of the serving benchmarks: one request shape, N connections, a JSON summary.

wrk (Debian's `wrk` package) is an event-driven C load generator: unlike a Python client it does not need a
core of its own to keep 32 connections busy, so the server, not the client, is what gets measured. A Lua
script sets the request (method, headers, body read from a file) and prints the summary as one JSON line.
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARK = "WRK-SUMMARY "
SCRIPT = """
wrk.method = "%(method)s"
%(headers)s
%(body)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('%(mark)s{"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "socket_errors": %%d, '
    .. '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "mean_us": %%f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class Request:
    """One request shape: `method` `path` with `body` (bytes) and `headers`."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body of one file part, and its Content-Type header."""
    boundary = "convlabbenchboundary7f3a"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, request: Request, *, connections: int, seconds: float, threads: int = 2) -> dict[str, Any]:
    """Requests/s and latency percentiles (ms) of `connections` keep-alive connections for `seconds`."""
    with tempfile.TemporaryDirectory(prefix="convlab-wrk-") as tmp:
        body_lines = ""
        if request.body:
            body_file = Path(tmp) / "body"
            body_file.write_bytes(request.body)
            body_lines = f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()'
        headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in request.headers)
        script = Path(tmp) / "request.lua"
        script.write_text(SCRIPT % {"method": request.method, "headers": headers, "body": body_lines, "mark": MARK})
        command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
        done = subprocess.run(
            [*command, "-s", str(script), url.rstrip("/") + request.path],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
    line = next(x for x in done.stdout.splitlines() if x.startswith(MARK))
    raw = json.loads(line[len(MARK) :])
    seconds_run = raw["duration_us"] / 1e6
    return {
        "connections": connections,
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds_run,
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"],
        "p50": raw["p50_us"] / 1000,
        "p90": raw["p90_us"] / 1000,
        "p99": raw["p99_us"] / 1000,
        "mean": raw["mean_us"] / 1000,
    }
