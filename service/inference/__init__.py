"""Inference: serve trained jobs' predictions.

`Predictor` is the service the API calls; `inputs` parses the three input forms, `images` decodes them into the
batch a model sees, `cache` keeps loaded checkpoints, `batching` joins concurrent requests into forward passes.
"""

from service.inference.images import ImageLimits, check_count
from service.inference.inputs import ONE_PIXEL_PNG, PredictRequest, RawInputs
from service.inference.predictor import Prediction, Predictions, Predictor

__all__ = [
    "ONE_PIXEL_PNG",
    "ImageLimits",
    "PredictRequest",
    "Prediction",
    "Predictions",
    "Predictor",
    "RawInputs",
    "check_count",
]
