"""PyTorch architectures of the batch-normalization, ResNet and DenseNet chapters. Imports nothing from service."""

from models.batchnorm import BatchNorm, batch_norm
from models.registry import ModelInfo, build_model, count_parameters, get_model_info, list_models
from models.summary import LayerSummary, summarize

__all__ = [
    "BatchNorm",
    "LayerSummary",
    "ModelInfo",
    "batch_norm",
    "build_model",
    "count_parameters",
    "get_model_info",
    "list_models",
    "summarize",
]
