"""GET /architectures and /architectures/{name}: the catalogue and layer tables match the book's numbers."""

import pytest


def test_catalogue_lists_every_architecture_with_parameter_counts(client):
    catalogue = {a["name"]: a for a in client.get("/architectures").json()}
    assert {"lenet", "bn_lenet", "resnet18", "densenet"} <= set(catalogue)
    assert catalogue["resnet18"]["num_params"] == 11_178_378
    assert catalogue["densenet"]["num_params"] == 758_226
    assert catalogue["bn_lenet"]["num_params"] == 44_878
    assert catalogue["resnet18"]["default_input_size"] == 96 and catalogue["lenet"]["description"]


def test_resnet18_summary_at_224_has_the_books_shapes(client):
    summary = client.get("/architectures/resnet18", params={"input_size": 224, "in_channels": 1}).json()
    shapes = [layer["output_shape"] for layer in summary["layers"]]
    assert summary["input_shape"] == [1, 1, 224, 224]
    for expected in ([1, 64, 56, 56], [1, 128, 28, 28], [1, 256, 14, 14], [1, 512, 7, 7], [1, 10]):
        assert expected in shapes
    assert sum(layer["num_params"] for layer in summary["layers"]) == summary["num_params"] == 11_178_378


def test_summary_defaults_to_the_models_input_size(client):
    summary = client.get("/architectures/bn_lenet").json()
    assert summary["input_shape"] == [1, 1, 28, 28] and summary["layers"][-1]["output_shape"] == [1, 10]


def test_summary_follows_in_channels(client):
    summary = client.get("/architectures/lenet", params={"in_channels": 3}).json()
    assert summary["input_shape"][1] == 3 and summary["num_params"] == 44_426 + 2 * 6 * 25


def test_unknown_architecture_answers_404(client):
    response = client.get("/architectures/alexnet")
    assert response.status_code == 404 and "alexnet" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"input_size": 5}, "input_size"), ({"input_size": 4096}, "input_size"), ({"in_channels": 0}, "in_channels")],
)
def test_out_of_range_parameters_answer_422(client, params, field):
    response = client.get("/architectures/resnet18", params=params)
    assert response.status_code == 422 and response.json()["detail"].startswith(field)


def test_input_too_small_for_the_architecture_answers_422(client):
    response = client.get("/architectures/densenet", params={"input_size": 28})
    assert response.status_code == 422 and "too small" in response.json()["detail"]
