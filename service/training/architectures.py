"""The architecture catalogue: each registered CNN with its size, and its layer table for a given input."""

from dataclasses import dataclass
from functools import lru_cache

from torch import nn

from models.catalog import get_model_info, list_models
from models.registry import build_model, count_parameters
from models.summary import LayerSummary, summarize
from service.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    default_input_size: int
    num_params: int  # for 1 input channel and 10 classes


@dataclass(frozen=True)
class LayerTable(Architecture):
    input_shape: tuple[int, ...]
    layers: list[LayerSummary]


def _trace(name: str, size: int, in_channels: int) -> tuple[nn.Module, list[LayerSummary]]:
    """Build `name` and push one zero input through it; ValueError or RuntimeError when the input is too small."""
    model = build_model(name, in_channels=in_channels, input_size=size)
    return model, summarize(model, (1, in_channels, size, size))


@lru_cache(maxsize=128)
def input_problem(name: str, size: int, in_channels: int) -> str | None:
    """Why `name` cannot take an in_channels x size x size input, or None when it can."""
    try:
        _trace(name, size, in_channels)
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    return None


@lru_cache(maxsize=64)
def _num_params(name: str, input_size: int, in_channels: int) -> int:
    return count_parameters(build_model(name, in_channels=in_channels, input_size=input_size))


def catalogue() -> list[Architecture]:
    """Every registered architecture with its default input size and parameter count."""
    return [
        Architecture(
            info.name, info.description, info.default_input_size, _num_params(info.name, info.default_input_size, 1)
        )
        for info in list_models()
    ]


def layer_table(name: str, *, input_size: int | None, in_channels: int) -> LayerTable:
    """The layers of `name` for a 1 x in_channels x size x size input; NotFound, or InvalidInput if it does not fit."""
    try:
        info = get_model_info(name)
    except KeyError as exc:
        raise NotFound(str(exc.args[0])) from None
    size = input_size or info.default_input_size
    shape = (1, in_channels, size, size)
    try:
        model, rows = _trace(name, size, in_channels)
    except (ValueError, RuntimeError) as exc:
        raise InvalidInput(f"input_size: {size} is too small for {name} ({exc})") from None
    return LayerTable(name, info.description, info.default_input_size, count_parameters(model), shape, rows)
