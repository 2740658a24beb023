"""Wire types of the architectures and their layer tables."""

from pydantic import BaseModel, Field


class ArchitectureRead(BaseModel):
    name: str = Field(examples=["bn_lenet"])
    description: str
    default_input_size: int = Field(examples=[28])
    num_params: int = Field(description="Trainable parameters for 1 input channel and 10 classes.")


class LayerRead(BaseModel):
    name: str = Field(examples=["0"])
    kind: str = Field(examples=["Conv2d"])
    output_shape: list[int] = Field(examples=[[1, 6, 24, 24]])
    num_params: int


class ArchitectureSummary(ArchitectureRead):
    input_shape: list[int] = Field(examples=[[1, 1, 28, 28]])
    layers: list[LayerRead]
