"""The Open Inference Protocol's own REST specification (vendored, tests/contract/oip/README.md) is a contract
the live service keeps: Schemathesis generates requests from it (examples, coverage, fuzzing) against a live
`convlab serve` (authentication required) whose registered model `lenet` (version 1, alias `prod`) is a real
trained job, and every answer must conform. Settings and (no) exclusions: tests/contract/oip/schemathesis.toml."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.contract.test_schemathesis import SEED_JOB, TOKEN
from tests.e2e.conftest import free_port, launch, serve_env, stop, wait_until_healthy

OIP = Path(__file__).with_name("oip")
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance"]
OPERATIONS = 6  # every operation of the spec: convlab implements them all
INFER = "/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}/infer"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def prepared_spec(tmp_path: Path, example: dict[str, Any]) -> Path:
    """The vendored spec with the changes Schemathesis needs, written (as JSON) to `tmp_path`."""
    # 1. Its path templates are written `${MODEL_NAME}`; OpenAPI's (and Schemathesis') are `{MODEL_NAME}`.
    text = re.sub(r"\$\{(\w+)\}", r"{\1}", (OIP / "open_inference_rest.yaml").read_text())
    spec = yaml.safe_load(text)
    # 2. Its request examples (x-examples: UINT32 and BOOL tensors named input0) fit no model, and Schemathesis
    #    does not read them: one `example` that fits the registered model, so a call surely reaches it.
    spec["paths"][INFER]["post"]["requestBody"]["content"]["application/json"]["example"] = example
    path = tmp_path / "open_inference_rest.json"
    path.write_text(json.dumps(spec))
    return path


def register(url: str, env: dict[str, str]) -> dict[str, Any]:
    """Train the seed job, register it as model `lenet` (version 1, alias `prod`); an inference request for it."""
    assert httpx.post(f"{url}/jobs", json=SEED_JOB, headers=HEADERS).status_code == 201
    worker = [sys.executable, "-m", "service.cli", "worker", "--burst", "--no-migrate"]
    subprocess.run(worker, env=env, check=True, capture_output=True, timeout=300)
    assert httpx.post(f"{url}/models", json={"name": "lenet"}, headers=HEADERS).status_code == 201
    version = httpx.post(f"{url}/models/lenet/versions", json={"job_id": 1}, headers=HEADERS, timeout=120)
    assert version.json()["version"] == 1, version.text
    alias = httpx.put(f"{url}/models/lenet/aliases/prod", json={"version": 1}, headers=HEADERS)
    assert alias.status_code == 200, alias.text
    tensor = httpx.get(f"{url}/v2/models/lenet/versions/1", headers=HEADERS).json()["inputs"][0]
    shape = [2, *tensor["shape"][1:]]
    data = [0.1 * (i % 7) for i in range(shape[0] * shape[1] * shape[2] * shape[3])]
    return {"id": "7", "inputs": [{"name": tensor["name"], "shape": shape, "datatype": "FP32", "data": data}]}


def schemathesis(spec: Path, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("schemathesis")), "--no-color"]
    command += ["--config-file", str(OIP / "schemathesis.toml"), "run", str(spec), "--url", url]
    command += ["--header", f"Authorization: Bearer {TOKEN}", "--phases", "examples,coverage,fuzzing"]
    command += ["--checks", ",".join(CHECKS), "--seed", "20261205", "--max-failures", "20"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=cwd)


def test_the_live_service_keeps_the_open_inference_protocol_spec(tmp_path: Path, data_dir: Path) -> None:
    env = serve_env(tmp_path, data_dir, CONVLAB_AUTH="required", CONVLAB_ADMIN_TOKEN=TOKEN, CONVLAB_PREDICT_RATE="0")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "0"]
    server = launch(command, env, log)
    try:
        wait_until_healthy(url, server, log)
        result = schemathesis(prepared_spec(tmp_path, register(url, env)), url, tmp_path)
    finally:
        stop(server)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert re.search(rf"Tested: {OPERATIONS}\b", report), f"not every one of the {OPERATIONS} operations ran"
    for phase in ("Examples", "Coverage", "Fuzzing"):
        assert re.search(rf"✅ {phase}\b", report), f"phase {phase} did not run and pass"
    server_log = log.read_text()
    for reached in ("GET /v2/models/lenet/versions/1 ", "GET /v2/models/lenet/versions/prod/ready ", "GET /v2/ "):
        assert f'"{reached}HTTP/1.1" 200' in server_log, f"no call {reached}answered 200"
    assert '"POST /v2/models/lenet/versions/1/infer HTTP/1.1" 200' in server_log, "no inference reached the model"
    if "unhandled error" in server_log or "Exception in ASGI application" in server_log:
        pytest.fail(f"the server logged an unhandled error:\n{server_log[-4000:]}")
