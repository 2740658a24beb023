"""CONVLAB_LOG_FORMAT=json on a live `convlab serve` with a worker: every line is one JSON object; the request's
lines carry its X-Request-ID and the worker's lines the job id and attempt."""

import json
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import free_port, launch, serve_env, stop, wait_until_healthy

TINY_JOB = {"architecture": "lenet", "dataset": "synthetic", "epochs": 1, "batch_size": 64, "train_subset": 256}


def test_json_log_lines_carry_request_ids_and_job_attempts(tmp_path: Path, data_dir: Path) -> None:
    env = serve_env(tmp_path, data_dir, CONVLAB_LOG_FORMAT="json", CONVLAB_POLL_SECONDS="0.2", OMP_NUM_THREADS="1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1"]
    server = launch(command, env, log)
    try:
        wait_until_healthy(url, server, log)
        created = httpx.post(f"{url}/jobs", json=TINY_JOB, headers={"X-Request-ID": "submit-e2e-1"})
        assert created.headers["X-Request-ID"] == "submit-e2e-1"
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/jobs/1").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
    finally:
        stop(server)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, the API's and the worker's, is JSON
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    submitted = [e for e in entries if e.get("request_id") == "submit-e2e-1"]
    assert any("POST /jobs" in e["message"] for e in submitted), "the access log line carries the request id"
    worker_lines = [e for e in entries if e.get("job_id") == 1]
    assert worker_lines and all(e["attempt"] == 1 for e in worker_lines)
    assert any("succeeded" in e["message"] for e in worker_lines)
