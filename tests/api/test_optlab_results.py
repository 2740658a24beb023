"""Every optimization-lab answer has the shape its route declares (the TypedDicts of service.optlab.results)."""

import pytest
from pydantic import TypeAdapter

from service.optlab import results as rs

CASES = [
    ("/trajectories", {"function": "bowl", "steps": 5, "optimizer": {"name": "newton"}}, rs.SingleTrajectory),
    (
        "/trajectories",
        {"function": "bowl", "steps": 5, "optimizers": [{"name": "gd", "lr": 5}, {"name": "adam"}]},
        rs.Comparison,
    ),
    (
        "/trajectories",
        {"function": "x**2", "x0": [1], "steps": 50, "optimizer": {"name": "gd", "lr": 3}},
        rs.SingleTrajectory,
    ),
    ("/trajectories/grid", {"function": "bowl", "resolution": 5}, rs.Grid2D),
    ("/trajectories/grid", {"function": "log(x)", "box": [[-1, 1]], "resolution": 5}, rs.Grid1D),
    ("/analysis/convexity", {"function": "sin(x1) + x2**2", "box": [[-3, 3], [-1, 1]]}, rs.Convexity),
    ("/analysis/stationary-point", {"function": "x1**2 - x2**2", "x": [0, 0]}, rs.StationaryPoint),
    (
        "/analysis/constrained",
        {
            "function": "bowl",
            "x0": [1, 1],
            "constraint": {"kind": "ball", "center": [0, 0], "radius": 0.5},
            "method": "lagrangian",
        },
        rs.Constrained,
    ),
    (
        "/optimizers/linreg",
        {"optimizers": [{"name": "sgd", "lr": 0.005}, {"name": "adam"}], "dataset": "synthetic", "epochs": 1},
        rs.Linreg,
    ),
]


@pytest.mark.parametrize(("path", "body", "result"), CASES, ids=[f"{c[0]}:{c[2].__name__}" for c in CASES])
def test_answer_matches_the_declared_result_type(client, path, body, result):
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    TypeAdapter(result).validate_python(response.json())


def test_function_catalogue_matches_its_declared_type(client):
    TypeAdapter(rs.FunctionCatalogue).validate_python(client.get("/functions").json())
