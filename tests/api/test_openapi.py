"""The OpenAPI document tells the truth: one error model for every 4xx, enums where the code has a fixed set,
discriminated unions where a body's shape depends on a kind, and 405 answers with the right `Allow`."""

import json

import pytest

from service.api.wire.errors import ErrorResponse
from tests.api.conftest import SMALL_JOB


@pytest.fixture
def document(client) -> dict:
    return client.get("/openapi.json").json()


def _operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_4xx_answer_is_the_one_json_error_model(document):
    """convlab's own routes answer ErrorResponse ({detail}); the Open Inference Protocol's /v2 routes answer its
    {error}, as that protocol's clients expect."""
    assert "HTTPValidationError" not in json.dumps(document)
    seen = set()
    for path, method, operation in _operations(document):
        model = "OipError" if path == "/v2" or path.startswith("/v2/") else "ErrorResponse"
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                seen.add(model)
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}
                }, f"{method} {path} {status}"
    assert seen == {"ErrorResponse", "OipError"}


def test_operations_declare_what_they_can_send(document):
    post_jobs = document["paths"]["/jobs"]["post"]["responses"]
    assert {"400", "401", "403", "413", "422", "429"} <= set(post_jobs)
    cancel = document["paths"]["/jobs/{job_id}/cancel"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422", "429"} <= set(cancel)
    assert set(document["paths"]["/version"]["get"]["responses"]) == {"200"}


def test_closed_sets_are_enums(document):
    schemas = document["components"]["schemas"]
    assert set(schemas["JobCreate"]["properties"]["architecture"]["enum"]) >= {"lenet", "bn_lenet", "resnet18"}
    dataset = schemas["JobCreate"]["properties"]["dataset"]  # built-in names, or an uploaded `name@N`
    assert "fashion_mnist" in dataset["examples"] and dataset["pattern"]
    assert "adam" in schemas["OptimizerRequest"]["properties"]["name"]["enum"]
    assert "cosine" in schemas["SchedulerSpec"]["properties"]["name"]["enum"]


def test_constraint_kinds_are_a_discriminated_union(document):
    constraint = document["components"]["schemas"]["ConstrainedRequest"]["properties"]["constraint"]
    assert constraint["discriminator"]["propertyName"] == "kind"
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in constraint["oneOf"]} == {"Ball", "HalfSpace"}
    assert set(document["components"]["schemas"]["Ball"]["required"]) == {"kind", "center", "radius"}


def test_one_of_two_fields_is_stated(document):
    request = document["components"]["schemas"]["TrajectoryRequest"]
    assert request["oneOf"] == [{"required": ["optimizer"]}, {"required": ["optimizers"]}]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/jobs", "GET, HEAD, POST"),
        ("PUT", "/jobs", "GET, HEAD, POST"),
        ("PATCH", "/jobs/3", "DELETE, GET, HEAD"),
        ("GET", "/trajectories", "POST"),
    ],
)
def test_405_lists_every_method_the_path_allows(client, method, path, allowed):
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert ErrorResponse.model_validate(response.json()).detail


def test_validation_errors_parse_as_the_error_model(client):
    response = client.post("/jobs", json={**SMALL_JOB, "priority": True, "epochs": 0})
    assert response.status_code == 422
    error = ErrorResponse.model_validate(response.json())
    assert error.errors is not None and {e.loc[-1] for e in error.errors} == {"priority", "epochs"}
