"""Parametrized over the registry: build, forward, shapes, finiteness, state_dict round trip."""

import pytest
import torch

from models.catalog import get_model_info, list_models
from models.registry import build_model

NAMES = [info.name for info in list_models()]


def test_registry_lists_the_five_architectures() -> None:
    assert NAMES == ["lenet", "bn_lenet", "bn_lenet_concise", "resnet18", "densenet"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_at_default_size_gives_finite_logits(name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    size = get_model_info(name).default_input_size
    model = build_model(name, in_channels=in_channels, num_classes=10)
    logits = model(torch.rand(2, in_channels, size, size))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_num_classes_sets_the_output_width(name: str) -> None:
    size = get_model_info(name).default_input_size
    assert build_model(name, num_classes=7).eval()(torch.rand(1, 1, size, size)).shape == (1, 7)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_reproduces_eval_outputs(name: str) -> None:
    torch.manual_seed(0)
    size = get_model_info(name).default_input_size
    model = build_model(name)
    model(torch.rand(4, 1, size, size))  # one training-mode pass moves the BN statistics off their init
    model.eval()
    clone = build_model(name)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    x = torch.rand(3, 1, size, size)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_lenet_adapts_its_classifier_to_the_input_size() -> None:
    assert build_model("bn_lenet", in_channels=3, input_size=32).eval()(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_unknown_architecture_names_the_choices() -> None:
    with pytest.raises(KeyError, match="resnet18"):
        build_model("vgg")


def test_lenet_refuses_inputs_below_16_and_names_the_minimum() -> None:
    assert build_model("lenet", input_size=16).eval()(torch.rand(1, 1, 16, 16)).shape == (1, 10)
    with pytest.raises(ValueError, match="at least 16x16, got 15"):
        build_model("lenet", input_size=15)
