"""The book's linear-regression comparison on the real airfoil data."""

import pytest

from service.errors import DatasetUnavailable, InvalidInput
from service.optlab.linreg import load_dataset, optimum_loss, train_linreg
from service.optlab.requests import OptimizerConfig

OPTIMUM = 0.241688

# The book's settings (batch 10 unless given, 2 epochs) for each optimizer of its comparisons.
BOOK = [
    ({"name": "gd", "lr": 1.0}, 1500),
    ({"name": "gd", "lr": 0.005}, 1),
    ({"name": "gd", "lr": 0.05}, 10),
    ({"name": "momentum", "lr": 0.02, "momentum": 0.5}, 10),
    ({"name": "momentum", "lr": 0.01, "momentum": 0.9}, 10),
    ({"name": "nesterov", "lr": 0.02, "momentum": 0.5}, 10),
    ({"name": "adagrad", "lr": 0.1}, 10),
    ({"name": "rmsprop", "lr": 0.01, "gamma": 0.9}, 10),
    ({"name": "adadelta", "rho": 0.9}, 10),
    ({"name": "adam", "lr": 0.01}, 10),
    ({"name": "sgd", "lr": 0.05, "schedule": "polynomial"}, 10),
    ({"name": "torch:sgd", "lr": 0.05}, 10),
    ({"name": "torch:sgd", "lr": 0.004, "momentum": 0.9}, 10),
    ({"name": "torch:adagrad", "lr": 0.1}, 10),
    ({"name": "torch:rmsprop", "lr": 0.01, "gamma": 0.9}, 10),
    ({"name": "torch:adadelta", "rho": 0.9, "eps": 1e-5}, 10),
    ({"name": "torch:adam", "lr": 0.01}, 10),
]


@pytest.fixture(scope="module")
def airfoil(data_dir):
    return load_dataset("airfoil", data_dir)


def test_airfoil_is_standardized_and_cut_to_1500_rows(airfoil):
    features, labels = airfoil
    assert features.shape == (1500, 5) and labels.shape == (1500,)
    assert float(features.mean()) == pytest.approx(0.0, abs=0.01)


def test_least_squares_optimum_is_the_books(airfoil):
    assert optimum_loss(*airfoil) == pytest.approx(OPTIMUM, abs=1e-6)


@pytest.mark.parametrize(("optimizer", "batch_size"), BOOK, ids=lambda v: str(v))
def test_final_loss_is_between_optimum_and_book_band(airfoil, optimizer, batch_size):
    result = train_linreg(*airfoil, OptimizerConfig(**optimizer), batch_size=batch_size, epochs=2, seed=0)
    assert OPTIMUM <= result["final_loss"] <= 0.26
    assert result["seconds_per_epoch"] > 0


def test_loss_is_recorded_every_100_examples(airfoil):
    result = train_linreg(*airfoil, OptimizerConfig(name="gd", lr=0.05), batch_size=10, epochs=2, seed=0)
    assert [p["examples"] for p in result["curve"]] == list(range(0, 3001, 100))
    assert result["curve"][0]["loss"] > result["curve"][-1]["loss"]


def test_same_seed_same_curve(airfoil):
    a = train_linreg(*airfoil, OptimizerConfig(name="adam", lr=0.01), batch_size=10, epochs=1, seed=3)
    b = train_linreg(*airfoil, OptimizerConfig(name="adam", lr=0.01), batch_size=10, epochs=1, seed=3)
    assert a["curve"] == b["curve"]


def test_divergence_gives_null_loss(airfoil):
    result = train_linreg(*airfoil, OptimizerConfig(name="gd", lr=1e5), batch_size=10, epochs=1, seed=0)
    assert result["diverged"] is True and result["final_loss"] is None


def test_synthetic_data_needs_no_files(tmp_path):
    features, labels = load_dataset("synthetic", tmp_path)
    result = train_linreg(features, labels, OptimizerConfig(name="adam", lr=0.01), batch_size=10, epochs=2, seed=0)
    assert optimum_loss(features, labels) <= result["final_loss"] < 0.1


def test_missing_airfoil_file_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailable, match="airfoil"):
        load_dataset("airfoil", tmp_path)


def test_curvature_methods_are_refused(airfoil):
    with pytest.raises(InvalidInput, match="Hessian"):
        train_linreg(*airfoil, OptimizerConfig(name="newton"), batch_size=10, epochs=1, seed=0)
