"""The training engine: datasets, optimizers, schedules, `fit()` with callbacks, and checkpoints.

Pure PyTorch: nothing here imports the database or FastAPI.
"""

from service.records import EpochRecord, StepRecord
from service.training.checkpoints import LoadedCheckpoint, load_checkpoint
from service.training.datasets import (
    DatasetInfo,
    check_dataset_available,
    get_dataset_info,
    list_datasets,
    load_dataset,
    preprocess,
)
from service.training.engine import evaluate, fit, train_epoch
from service.training.optimizers import ScratchOptimizer, build_optimizer
from service.training.records import (
    Callbacks,
    Checkpoint,
    DownloadProgress,
    FitResult,
    Progress,
    RunInfo,
)
from service.training.schedules import lr_at

__all__ = [
    "Callbacks",
    "Checkpoint",
    "DatasetInfo",
    "DownloadProgress",
    "EpochRecord",
    "FitResult",
    "LoadedCheckpoint",
    "Progress",
    "RunInfo",
    "ScratchOptimizer",
    "StepRecord",
    "build_optimizer",
    "check_dataset_available",
    "evaluate",
    "fit",
    "get_dataset_info",
    "list_datasets",
    "load_checkpoint",
    "load_dataset",
    "lr_at",
    "preprocess",
    "train_epoch",
]
