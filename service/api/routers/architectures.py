"""Architecture catalogue: the registered CNNs and their layer-by-layer summaries."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from service.api.plumbing.security import JOBS_READ, auth_responses
from service.api.wire.architectures import ArchitectureRead, ArchitectureSummary
from service.api.wire.errors import ErrorResponse
from service.training.architectures import Architecture, LayerTable, catalogue, layer_table

router = APIRouter(
    prefix="/architectures", tags=["architectures"], dependencies=[Depends(JOBS_READ)], responses=auth_responses()
)


@router.get("", summary="List the architectures", response_model=list[ArchitectureRead])
def list_architectures() -> list[Architecture]:
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
) -> LayerTable:
    """Each top-level layer's output shape and parameter count for one input of the given size."""
    return layer_table(name, input_size=input_size, in_channels=in_channels)
