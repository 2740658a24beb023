"""The architecture catalogue: each registered CNN with its size, and its layer table for a given input."""

from dataclasses import dataclass
from functools import lru_cache

from models import LayerSummary, build_model, count_parameters, get_model_info, list_models, summarize
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
        model = build_model(name, in_channels=in_channels, input_size=size)
        rows = summarize(model, shape)
    except (ValueError, RuntimeError) as exc:
        raise InvalidInput(f"input_size: {size} is too small for {name} ({exc})") from None
    return LayerTable(name, info.description, info.default_input_size, count_parameters(model), shape, rows)
