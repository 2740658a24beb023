"""Inference: serve trained jobs' predictions.

`Predictor` is the service the API calls; `inputs` parses the three input forms, `images` decodes them into the
batch a model sees, `cache` keeps loaded checkpoints, `batching` joins concurrent requests into forward passes.
`export` turns a checkpoint into a verified ONNX file with its model card, `exporter` makes each one once and
stores it (`Predictor.exporter`), and `backends` decides whether torch or onnxruntime runs a loaded model.
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
