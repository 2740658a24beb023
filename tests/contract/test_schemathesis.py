"""The OpenAPI document is a contract the live service keeps: Schemathesis generates requests from it in every
phase (examples, coverage, fuzzing, stateful) against a live `convlab serve` with authentication required, and
every answer must conform. Settings and (no) exclusions: tests/contract/schemathesis.toml."""

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, launch, serve_env, stop, wait_until_healthy

CONFIG = Path(__file__).with_name("schemathesis.toml")
TOKEN = "cvl_contract_admin_" + "t" * 32
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
]
# A job that trains in seconds, so that checkpoints, history and predict have something to answer about.
SEED_JOB = {"architecture": "lenet", "dataset": "synthetic", "epochs": 1, "batch_size": 64, "train_subset": 256}


def test_the_live_service_keeps_its_openapi_contract(tmp_path: Path, data_dir: Path) -> None:
    env = serve_env(
        tmp_path,
        data_dir,
        CONVLAB_AUTH="required",
        CONVLAB_ADMIN_TOKEN=TOKEN,
        CONVLAB_MAX_ACTIVE_JOBS="100000",  # the fuzzer queues many jobs; quotas are tested elsewhere
        CONVLAB_PREDICT_RATE="0",
        CONVLAB_LAB_RATE="0",
        CONVLAB_LAB_MAX_SECONDS="2",
        OMP_NUM_THREADS="1",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "0"]
    server = launch(command, env, log)
    try:
        wait_until_healthy(url, server, log)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{url}/jobs", json=SEED_JOB, headers=headers).status_code == 201
        worker = [sys.executable, "-m", "service.cli", "worker", "--burst", "--no-migrate"]
        subprocess.run(worker, env=env, check=True, capture_output=True, timeout=300)
        assert httpx.get(f"{url}/jobs/1", headers=headers).json()["status"] == "succeeded"
        document = httpx.get(f"{url}/openapi.json").json()
        operations = sum(len(methods) for methods in document["paths"].values())
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--no-color",
                "--config-file",
                str(CONFIG),
                "run",
                f"{url}/openapi.json",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--checks",
                ",".join(CHECKS),
                "--seed",
                "20261202",
                "--max-failures",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            cwd=tmp_path,
        )
    finally:
        stop(server)
    report = result.stdout + result.stderr
    assert result.returncode == 0, _failures(report)
    assert re.search(rf"Tested: {operations}\b", report), f"not every one of the {operations} operations ran"
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}\b", report), f"phase {phase} did not run and pass"
    server_log = log.read_text()
    if "unhandled error" in server_log or "Exception in ASGI application" in server_log:
        pytest.fail(f"the server logged an unhandled error:\n{server_log[-4000:]}")


def _failures(report: str) -> str:
    """The report's FAILURES and ERRORS sections (each request, its answer and a curl line) and its summary."""
    sections = [report[m.start() : m.start() + 5000] for m in re.finditer(r"=+ (FAILURES|ERRORS) =+", report)]
    return "\n".join([*sections, report[-2500:]])
