"""Wire types of explanations: a prediction and a heatmap per image."""

from typing import Any, Literal

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


class ModelExplainResponse(ExplainResponse):
    """Explanations by a registered model's name, naming the version that made them."""

    model: str
    version: int
    alias: str | None = Field(None, description="The alias that named the version (none when asked by number).")


def explain_query(
    *, method: str = "gradcam", target: int | None = None, steps: int = 32, checkpoint: int | None = None
) -> dict[str, Any]:
    """The query parameters of an explain request (what to explain travels there, for either body form)."""
    params: dict[str, Any] = {"method": method, "target": "predicted" if target is None else target, "steps": steps}
    return params | ({"checkpoint": checkpoint} if checkpoint is not None else {})
