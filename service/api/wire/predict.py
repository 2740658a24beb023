"""Wire types of predictions."""

from pydantic import BaseModel, Field


class ClassScore(BaseModel):
    class_index: int = Field(examples=[9])
    label: str = Field(examples=["Ankle boot"])
    probability: float = Field(examples=[0.97])


class PredictionRead(ClassScore):
    top_k: list[ClassScore]


class PredictResponse(BaseModel):
    """Predictions in input order, and which checkpoint made them."""

    job_id: int
    checkpoint_epoch: int
    checkpoint_sha256: str
    predictions: list[PredictionRead]
