"""The optimization-lab endpoints over real HTTP (TestClient on the real app), including fuzzed bad input."""

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.main import create_app
from tests.api.conftest import make_settings

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ISSUE_EXAMPLE = {
    "function": "0.1*x1**2 + 2*x2**2",
    "optimizer": {"name": "momentum", "lr": 0.6, "momentum": 0.5},
    "x0": [-5, -2],
    "steps": 20,
}

COMPARISON = {k: v for k, v in ISSUE_EXAMPLE.items() if k != "optimizer"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, data_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("optlab"), data_path))
    with TestClient(app) as client:
        yield client


def post(client: TestClient, path: str, body: object, expect: int = 200) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == expect, response.text
    return response.json()


def test_trajectory_of_the_issue_example(client):
    body = post(client, "/trajectories", ISSUE_EXAMPLE)
    assert len(body["points"]) == 21
    assert body["points"][0] == {
        "step": 0,
        "x": [-5.0, -2.0],
        "f": 10.5,
        "grad": [-1.0, -8.0],
        "grad_norm": math.hypot(1, 8),
    }
    assert body["points"][-1]["x"] == pytest.approx([0.007188, 0.002553], abs=5e-7)
    assert body["diverged"] is None
    assert set(body["state"]) == {"v"}


def test_compare_several_optimizers_in_one_call(client):
    optimizers = [
        {"name": "gd", "lr": 0.4},
        {"name": "adagrad", "lr": 0.4},
        {"name": "torch:adam", "lr": 0.5, "label": "A"},
    ]
    body = post(client, "/trajectories", {"function": "ill_conditioned", "optimizers": optimizers, "steps": 20})
    assert [run["optimizer"] for run in body["runs"]] == ["gd", "adagrad", "A"]
    assert body["runs"][0]["points"][-1]["x"] == pytest.approx([-0.943467, -0.000073], abs=5e-7)
    assert body["runs"][1]["points"][-1]["x"] == pytest.approx([-2.382563, -0.158591], abs=5e-7)
    assert body["x0"] == [-5.0, -2.0]  # the preset's start


def test_ten_thousand_steps_answer_in_full(client):
    body = post(client, "/trajectories", {"function": "bowl", "optimizer": {"name": "gd", "lr": 0.01}, "steps": 10_000})
    assert len(body["points"]) == 10_001
    assert body["points"][-1]["step"] == 10_000


def test_divergence_is_reported(client):
    body = post(
        client, "/trajectories", {"function": "x**2", "x0": [10], "optimizer": {"name": "gd", "lr": 1.1}, "steps": 500}
    )
    assert body["diverged"]["step"] == len(body["points"]) - 1


def test_newton_reports_curvature_problems(client):
    body = post(client, "/trajectories", {"function": "cubic", "x0": [0], "optimizer": {"name": "newton"}, "steps": 5})
    assert body["stopped"]["step"] == 0 and body["event_counts"] == {"singular_hessian": 1}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**ISSUE_EXAMPLE, "steps": 20_001}, "steps 20001 exceeds"),
        ({**ISSUE_EXAMPLE, "optimizer": {"name": "lbfgs"}}, "unknown optimizer"),
        ({**ISSUE_EXAMPLE, "optimizer": {"name": "torch:sgd", "lr": 0.1, "nesterov": True}}, "torch:sgd"),
        ({**ISSUE_EXAMPLE, "optimizer": {"name": "gd", "lr": -1}}, "lr"),
        ({**ISSUE_EXAMPLE, "optimizer": {"name": "gd", "bogus": 1}}, "bogus"),
        ({**ISSUE_EXAMPLE, "function": "x**2"}, "1-D function"),
        ({**ISSUE_EXAMPLE, "x0": [1]}, "reads x2"),
        ({**ISSUE_EXAMPLE, "x0": [0.0] * 17, "function": "x1"}, "dimension 17"),
        ({**ISSUE_EXAMPLE, "optimizers": [{"name": "gd"}]}, "either"),
        ({**COMPARISON, "optimizers": [{"name": "gd"}] * 9}, "9 optimizers"),
        ({**ISSUE_EXAMPLE, "optimizer": None}, "must not be null"),
        ({**ISSUE_EXAMPLE, "function": "x1.__class__"}, "attribute access"),
        ({**ISSUE_EXAMPLE, "function": "__import__('os').system('true')"}, "only these functions"),
        ({**ISSUE_EXAMPLE, "function": "[x1 for x1 in (1,)]"}, "comprehensions"),
        ({**ISSUE_EXAMPLE, "function": "(lambda: x1)()"}, "only these functions"),
        ({**ISSUE_EXAMPLE, "function": "x1 if x2 else 0"}, "conditional"),
        ({**ISSUE_EXAMPLE, "function": "x1 ** 10**6"}, "exponent"),
        ({**ISSUE_EXAMPLE, "function": "x1+" * 200 + "x2"}, "characters long"),
        ({"function": "x**2", "optimizer": {"name": "gd"}}, "x0 is required"),
    ],
)
def test_bad_trajectory_requests_are_422_with_detail(client, body, fragment):
    detail = post(client, "/trajectories", body, expect=422)["detail"]
    assert fragment in detail


def test_non_finite_json_numbers_are_refused(client):
    response = client.post(
        "/trajectories",
        content=b'{"function": "x**2", "x0": [NaN], "optimizer": {"name": "gd"}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422 and "detail" in response.json()


@pytest.mark.parametrize(("fmt", "signature"), [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_plot_draws_contours_and_trajectories(client, fmt, signature):
    body = {"function": "ill_conditioned", "optimizers": [{"name": "gd", "lr": 0.4}, {"name": "momentum", "lr": 0.6}]}
    response = client.post(f"/trajectories/plot?format={fmt}", json=body)
    assert response.status_code == 200
    assert response.content.startswith(signature)
    assert response.headers["content-type"].startswith("image/")


def test_plot_of_a_1d_function_without_a_preset_box(client):
    body = {"function": "x*cos(0.15*pi*x)", "x0": [10], "optimizer": {"name": "newton"}, "steps": 10}
    response = client.post("/trajectories/plot", json=body)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_plot_refuses_three_dimensions(client):
    body = {"function": "x1+x2+x3", "x0": [0, 0, 0], "optimizer": {"name": "gd"}}
    assert "one or two" in post(client, "/trajectories/plot", body, expect=422)["detail"]


def test_contour_grid(client):
    body = post(client, "/trajectories/grid", {"function": "x1**2 - x2**2", "box": [[-1, 1], [-2, 2]], "resolution": 3})
    assert body["x1"] == [-1.0, 0.0, 1.0] and body["x2"] == [-2.0, 0.0, 2.0]
    assert body["f"] == [[-3.0, -4.0, -3.0], [1.0, 0.0, 1.0], [-3.0, -4.0, -3.0]]  # rows follow x2


def test_contour_grid_limits_and_undefined_values(client):
    assert (
        "resolution"
        in post(client, "/trajectories/grid", {"function": "bowl", "resolution": 202}, expect=422)["detail"]
    )
    body = post(client, "/trajectories/grid", {"function": "log(x)", "box": [[-1, 1]], "resolution": 3})
    assert body["f"] == [None, None, 0.0]


def test_convexity_endpoint(client):
    body = post(client, "/analysis/convexity", {"function": "x**3", "box": [[-2, 2]]})
    assert body["convex"] is False
    example = body["counterexample"]
    assert example["holds"] is True and example["f_point"] > example["chord"]
    assert post(client, "/analysis/convexity", {"function": "bowl", "box": [[-1, 1], [-1, 1]]})["convex"] is True


@pytest.mark.parametrize(
    ("function", "x", "expected"),
    [("x**3", [0], "degenerate"), ("x1**2 - x2**2", [0, 0], "saddle"), ("bowl", [0, 0], "minimum")],
)
def test_stationary_point_endpoint(client, function, x, expected):
    assert post(client, "/analysis/stationary-point", {"function": function, "x": x})["classification"] == expected


def test_constrained_endpoint(client):
    body = {
        "function": "(x1-2)**2 + (x2-2)**2",
        "x0": [0, 0],
        "constraint": {"kind": "halfspace", "normal": [1, 1], "offset": 1},
        "method": "projected_gd",
        "steps": 100,
    }
    result = post(client, "/analysis/constrained", body)
    assert result["final"]["x"] == pytest.approx([0.5, 0.5]) and len(result["points"]) == 101


def test_linreg_compares_optimizers_on_airfoil(client, data_dir):
    body = {"optimizers": [{"name": "gd", "lr": 0.05}, {"name": "adam", "lr": 0.01}], "batch_size": 10, "epochs": 2}
    result = post(client, "/optimizers/linreg", body)
    assert result["optimum_loss"] == pytest.approx(0.241688, abs=1e-6)
    for run in result["runs"]:
        assert 0.241688 <= run["final_loss"] <= 0.26
        assert len(run["curve"]) == 31


def test_linreg_plot_and_limits(client, data_dir):
    response = client.post(
        "/optimizers/linreg/plot?format=svg", json={"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 1}
    )
    assert response.status_code == 200 and b"<svg" in response.content
    assert (
        "epochs"
        in post(client, "/optimizers/linreg", {"optimizer": {"name": "gd"}, "epochs": 21}, expect=422)["detail"]
    )


def test_linreg_without_data_is_a_clear_422(tmp_path):
    app = create_app(make_settings(tmp_path, tmp_path / "nothing"))
    with TestClient(app) as client:
        assert "airfoil" in post(client, "/optimizers/linreg", {"optimizer": {"name": "gd"}}, expect=422)["detail"]


def test_functions_lists_presets_and_optimizers(client):
    body = client.get("/functions").json()
    assert {f["name"] for f in body["functions"]} >= {"rosenbrock", "rastrigin", "himmelblau", "saddle"}
    assert "torch:adam" in body["optimizers"] and "newton" in body["optimizers"]


# ---- fuzzing: no input produces a 5xx, and every refusal carries a detail ----

PIECES = [
    "x",
    "x1",
    "x2",
    "x3",
    "2",
    "-",
    "+",
    "*",
    "/",
    "**",
    "^",
    "(",
    ")",
    "sin(",
    "log(",
    "sqrt(",
    "pi",
    "e",
    "1e308",
    "0",
    ".",
    "_",
    "__class__",
    "[",
    "]",
    "lambda",
    "if",
    "for",
    ",",
    " ",
    "1e-320",
    "exp(",
    "abs(",
]
FUNCTIONS = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=25).map("".join),
    st.sampled_from(["bowl", "rosenbrock", "cubic", "saddle", "x**2", "log(x)", "1/x", "x1/x2", "sqrt(x1)-x2"]),
    st.text(max_size=30),
)
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, 1e300, -1e300]),
)
POINTS = st.lists(NUMBERS, min_size=0, max_size=4)
NAMES = st.sampled_from(
    [
        "gd",
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adadelta",
        "adam",
        "newton",
        "preconditioned_gd",
        "torch:sgd",
        "torch:adam",
        "torch:rprop",
        "torch:lbfgs",
        "nope",
    ]
)
OPTIMIZERS = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "lr": NUMBERS,
        "momentum": NUMBERS,
        "eps": NUMBERS,
        "gamma": st.floats(0, 0.99),
        "beta1": st.floats(0, 0.99),
        "schedule": st.sampled_from(["constant", "exponential", "polynomial", "other"]),
        "nesterov": st.booleans(),
    },
)


def assert_clean(response) -> None:
    assert response.status_code < 500, response.text
    body = response.json() if response.headers["content-type"].startswith("application/json") else None
    if response.status_code >= 400:
        assert body is not None and body["detail"]


@FUZZ
@given(
    function=FUNCTIONS,
    x0=POINTS,
    steps=st.integers(-1, 60),
    optimizer=OPTIMIZERS,
    backend=st.sampled_from(["compiled", "autograd"]),
)
def test_fuzzed_trajectories_never_fail_server_side(client, function, x0, steps, optimizer, backend):
    body = {"function": function, "x0": x0, "steps": steps, "optimizer": optimizer, "backend": backend}
    assert_clean(client.post("/trajectories", json=body))


@FUZZ
@given(function=FUNCTIONS, box=st.lists(st.lists(NUMBERS, min_size=0, max_size=3), max_size=3), x=POINTS)
def test_fuzzed_analysis_never_fails_server_side(client, function, box, x):
    assert_clean(client.post("/analysis/convexity", json={"function": function, "box": box, "samples": 16}))
    assert_clean(client.post("/analysis/stationary-point", json={"function": function, "x": x}))
    assert_clean(client.post("/trajectories/grid", json={"function": function, "box": box, "resolution": 5}))


@FUZZ
@given(
    function=FUNCTIONS,
    x0=POINTS,
    constraint=st.fixed_dictionaries(
        {"kind": st.sampled_from(["ball", "halfspace", "cube"])},
        optional={"center": POINTS, "radius": NUMBERS, "normal": POINTS, "offset": NUMBERS},
    ),
    method=st.sampled_from(["projected_gd", "penalty", "lagrangian", "magic"]),
    lr=NUMBERS,
)
def test_fuzzed_constrained_never_fails_server_side(client, function, x0, constraint, method, lr):
    body = {"function": function, "x0": x0, "constraint": constraint, "method": method, "lr": lr, "steps": 20}
    assert_clean(client.post("/analysis/constrained", json=body))


@settings(max_examples=15, deadline=None)
@given(optimizer=OPTIMIZERS, batch_size=st.integers(-1, 2000), fmt=st.sampled_from(["png", "svg", "gif"]))
def test_fuzzed_plots_and_linreg_never_fail_server_side(client, optimizer, batch_size, fmt):
    body = {"dataset": "synthetic", "optimizer": optimizer, "batch_size": batch_size, "epochs": 1}
    assert_clean(client.post("/optimizers/linreg", json=body))
    plot = {"function": "bowl", "optimizer": optimizer, "steps": 10}
    assert_clean(client.post(f"/trajectories/plot?format={fmt}", json=plot))
