"""Search spaces: grid points from lists, steps and counts; dotted paths set inside a spec."""

import pytest

from service.errors import InvalidInput
from service.jobspec.paths import with_values
from service.sweeps.space import Space


def test_grid_points_from_a_step_a_count_and_a_log_count() -> None:
    space = Space.parse(
        {
            "optimizer.momentum": {"low": 0.0, "high": 0.3, "step": 0.1},
            "batch_size": {"low": 16, "high": 64, "count": 3},
            "optimizer.lr": {"low": 0.01, "high": 1.0, "log": True, "count": 3},
        }
    )
    assert space.grid_points("optimizer.momentum") == [0.0, 0.1, 0.2, 0.3]
    assert space.grid_points("batch_size") == [16, 40, 64]
    assert space.grid_points("optimizer.lr") == [0.01, 0.1, 1.0]
    assert len(space.grid()) == 4 * 3 * 3


def test_grid_is_the_product_with_the_last_path_fastest() -> None:
    space = Space.parse({"seed": {"values": [1, 2]}, "scheduler.name": {"choices": ["constant", "cosine"]}})
    assert space.grid() == [
        {"seed": 1, "scheduler.name": "constant"},
        {"seed": 1, "scheduler.name": "cosine"},
        {"seed": 2, "scheduler.name": "constant"},
        {"seed": 2, "scheduler.name": "cosine"},
    ]


def test_apply_params_sets_nested_fields_without_touching_the_base() -> None:
    base = {"architecture": "lenet", "optimizer": {"name": "sgd", "lr": 0.1}}
    spec = with_values(base, {"optimizer.lr": 0.5, "batch_size": 64})
    assert spec == {"architecture": "lenet", "optimizer": {"name": "sgd", "lr": 0.5}, "batch_size": 64}
    assert base["optimizer"] == {"name": "sgd", "lr": 0.1}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"optimizer.lr": {"values": [0.1], "low": 0.1, "high": 1}}, "exactly one of values, choices"),
        ({"optimizer.lr": {"low": 0.0, "high": 1, "log": True}}, "a log range needs low > 0"),
        ({"optimizer.lr": {"low": 0.1, "high": 1, "log": True, "step": 0.1}}, "cannot have a step"),
        ({"seed": {"values": [1, 1]}}, "the values repeat"),
        ({"seed": {"values": [1], "step": 1}}, "apply to a low/high range only"),
    ],
)
def test_malformed_dimension_is_refused_naming_the_path(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Space.parse(raw)
    assert caught.value.detail.startswith(f"space.{next(iter(raw))}: ") and message in caught.value.detail
