"""Architecture catalogue: the registered CNNs and their layer-by-layer summaries."""

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Path, Query

from models import build_model, count_parameters, get_model_info, list_models, summarize
from service.errors import InvalidInput, NotFound
from service.schemas import ArchitectureRead, ArchitectureSummary, ErrorResponse, LayerRead

router = APIRouter(prefix="/architectures", tags=["architectures"])


@lru_cache(maxsize=64)
def _num_params(name: str, input_size: int, in_channels: int) -> int:
    return count_parameters(build_model(name, in_channels=in_channels, input_size=input_size))


def catalogue() -> list[ArchitectureRead]:
    """Every registered architecture with its default input size and parameter count."""
    return [
        ArchitectureRead(
            name=info.name,
            description=info.description,
            default_input_size=info.default_input_size,
            num_params=_num_params(info.name, info.default_input_size, 1),
        )
        for info in list_models()
    ]


def summary(name: str, *, input_size: int | None, in_channels: int) -> ArchitectureSummary:
    """The layer table of `name` for a 1 x in_channels x size x size input; InvalidInput if it does not fit."""
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
    return ArchitectureSummary(
        name=name,
        description=info.description,
        default_input_size=info.default_input_size,
        num_params=count_parameters(model),
        input_shape=list(shape),
        layers=[
            LayerRead(name=r.name, kind=r.kind, output_shape=list(r.output_shape), num_params=r.num_params)
            for r in rows
        ],
    )


@router.get("", summary="List the architectures", response_model=list[ArchitectureRead])
def list_architectures() -> list[ArchitectureRead]:
    """Name, description, default input size and parameter count of every trainable architecture."""
    return catalogue()


@router.get(
    "/{name}",
    summary="Layer-by-layer summary of an architecture",
    response_model=ArchitectureSummary,
    responses={
        404: {"model": ErrorResponse, "description": "No such architecture."},
        422: {"model": ErrorResponse, "description": "The input size is too small or out of range."},
    },
)
def get_architecture(
    name: Annotated[str, Path(examples=["resnet18"])],
    input_size: Annotated[
        int | None, Query(ge=12, le=512, description="Input side in pixels; default per model.", examples=[224])
    ] = None,
    in_channels: Annotated[int, Query(ge=1, le=4, examples=[1])] = 1,
) -> ArchitectureSummary:
    """Each top-level layer's output shape and parameter count for one input of the given size."""
    return summary(name, input_size=input_size, in_channels=in_channels)
