"""/health, /version, the error format, and the OpenAPI document's completeness."""

import torch

from service import __version__
from service.worker import run_worker


def test_health_reports_database_and_recent_workers(trained):
    health = trained.get("/health").json()
    assert health["status"] == "ok" and health["database"] is True
    assert isinstance(health["workers"], list) and health["workers_alive"] == len(health["workers"])


def test_health_lists_a_worker_that_just_ran(trained_settings, trained):
    # A burst worker finds no work but registers and reports in; the fixture's own worker may have run long ago.
    run_worker(trained_settings, burst=True)
    assert trained.get("/health").json()["workers_alive"] >= 1


def test_version_reports_convlab_and_torch(client):
    version = client.get("/version").json()
    assert version["version"] == __version__ and version["torch"] == torch.__version__


def test_unknown_route_answers_json_404(client):
    response = client.get("/no/such/route")
    assert response.status_code == 404 and response.json()["detail"]


def test_wrong_method_answers_json_405(client):
    response = client.put("/jobs")
    assert response.status_code == 405 and response.json()["detail"]


def operations(client):
    schema = client.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_operation_has_a_summary_and_a_description(client):
    for path, method, operation in operations(client):
        assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        assert operation.get("description"), f"{method.upper()} {path} has no description"


def test_every_operation_with_inputs_documents_its_error_responses(client):
    for path, method, operation in operations(client):
        has_inputs = operation.get("parameters") or operation.get("requestBody")
        if has_inputs:
            errors = [code for code in operation["responses"] if code.startswith("4")]
            assert errors, f"{method.upper()} {path} documents no 4xx response"


def test_job_and_predict_bodies_have_examples(client):
    schema = client.get("/openapi.json").json()
    create = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert create.get("examples") or create["schema"].get("examples")
    predict = schema["paths"]["/jobs/{job_id}/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(predict)
    assert predict["application/json"]["examples"]
    assert {"400", "404", "409", "413", "415", "422"} <= set(
        schema["paths"]["/jobs/{job_id}/predict"]["post"]["responses"]
    )
