"""What the abuse limits cost and how fast they act, against a live `convlab serve` with auth required.

    .venv/bin/python bench/limits.py [--json bench/results/limits.json]

Measures, in one run on one machine:
  - the lab budget: 8 Newton runs of 20,000 steps on a 16-D function through autograd (the request that held a
    core for 45 s before the budget), answered 422 after CONVLAB_LAB_MAX_SECONDS (default 5 s), and the latency
    of GET /health polled every 50 ms meanwhile (median and max);
  - the body limit: a chunked POST /jobs that claims to go on for 200 MiB; how many bytes the server let in before
    its 413 and how long that took;
  - authentication's cost: GET /jobs?limit=1 latency with a bearer token against the same server with auth off.
"""

import argparse
import json
import os
import platform
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CONVLAB_DATA_DIR", ROOT.parent / "shared" / "datasets"))
TOKEN = "cvl_bench_admin_" + "b" * 32
LONG_LAB_CALL = {
    "function": " + ".join(f"(x{i} - 1)**4 + x{i}**2" for i in range(1, 17)),
    "x0": [3.0] * 16,
    "steps": 20_000,
    "backend": "autograd",
    "optimizers": [{"name": "newton", "lr": 0.5}] * 8,
}


@contextmanager
def server(state: Path, **env: str) -> Iterator[tuple[str, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    full = {**os.environ, "CONVLAB_STATE_DIR": str(state), "CONVLAB_DATA_DIR": str(DATA_DIR), **env}
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "0"]
    process = subprocess.Popen(command, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with suppress(httpx.TransportError):
                if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                    break
            time.sleep(0.25)
        yield url, port
    finally:
        process.terminate()
        process.wait(timeout=60)


def lab_budget(url: str) -> dict[str, float]:
    outcome: dict[str, float] = {}

    def call() -> None:
        start = time.perf_counter()
        response = httpx.post(f"{url}/trajectories", json=LONG_LAB_CALL, headers=auth(), timeout=120)
        outcome["seconds"] = time.perf_counter() - start
        outcome["status"] = response.status_code

    thread = threading.Thread(target=call)
    thread.start()
    health: list[float] = []
    while thread.is_alive():
        start = time.perf_counter()
        httpx.get(f"{url}/health", timeout=30)
        health.append(time.perf_counter() - start)
        time.sleep(0.05)
    thread.join()
    return {
        **outcome,
        "health_median_ms": 1000 * statistics.median(health),
        "health_max_ms": 1000 * max(health),
        "health_polls": len(health),
    }


def body_limit(port: int) -> dict[str, float]:
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    sent = 0
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        with suppress(ConnectionError):
            while sent < 200 * 1024 * 1024 and not select.select([connection], [], [], 0.005)[0]:
                connection.sendall(chunk)
                sent += 65536
        answer = b""
        with suppress(ConnectionError):
            answer = connection.recv(200)
    return {"bytes_sent": sent, "seconds": time.perf_counter() - start, "status": int(answer[9:12] or 0)}


def latency(url: str, headers: dict[str, str], n: int = 300) -> float:
    with httpx.Client() as client:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            client.get(f"{url}/jobs?limit=1", headers=headers)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as state:
        env = {"CONVLAB_AUTH": "required", "CONVLAB_ADMIN_TOKEN": TOKEN}
        with server(Path(state) / "on", **env) as (url, port):
            results["lab_budget"] = lab_budget(url)
            results["body_limit"] = body_limit(port)
            results["jobs_read_ms_auth_on"] = latency(url, auth())
        with server(Path(state) / "off", CONVLAB_AUTH="off") as (url, _):
            results["jobs_read_ms_auth_off"] = latency(url, {})
    lab, body = results["lab_budget"], results["body_limit"]
    assert isinstance(lab, dict) and isinstance(body, dict)
    print(f"lab budget: HTTP {lab['status']:.0f} after {lab['seconds']:.2f} s;", end=" ")
    print(f"/health median {lab['health_median_ms']:.1f} ms, max {lab['health_max_ms']:.1f} ms meanwhile")
    print(f"body limit: HTTP {body['status']:.0f} after {body['bytes_sent'] / 2**20:.2f} MiB of 200 MiB,", end=" ")
    print(f"{body['seconds']:.3f} s")
    on, off = results["jobs_read_ms_auth_on"], results["jobs_read_ms_auth_off"]
    print(f"GET /jobs?limit=1 median: {on:.2f} ms with a token, {off:.2f} ms with auth off")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
