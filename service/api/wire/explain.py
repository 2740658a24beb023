"""Wire types of explanations: a prediction and a heatmap per image."""

from typing import Literal

from pydantic import BaseModel, Field

from service.api.wire.predict import ClassScore, PredictionRead

ExplainMethod = Literal["gradcam", "integrated_gradients", "saliency"]


class ExplanationRead(BaseModel):
    """One image: its prediction, the class explained and the heatmap over the image as the model saw it."""

    prediction: PredictionRead
    target: ClassScore = Field(description="The class explained, with its probability.")
    heatmap: list[list[float]] = Field(
        description="Rows of the input-size grid (28x28 for the LeNets, 96x96 for ResNet-18 and DenseNet), each "
        "value in [0, 1]: 1 where the evidence for the target is strongest."
    )


class ExplainResponse(BaseModel):
    """Explanations in input order, the method, and which checkpoint made them."""

    job_id: int
    checkpoint_epoch: int
    checkpoint_sha256: str
    method: ExplainMethod
    explanations: list[ExplanationRead]
