"""What a run's results depend on besides its spec: versions, device, determinism settings and the data."""

import platform
from typing import Any

import torch

from service.training.records import RunInfo


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _cudnn_version() -> int | None:
    if not torch.backends.cudnn.is_available():  # type: ignore[no-untyped-call]
        return None
    version: int | None = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
    return version


def describe_environment(info: RunInfo, *, convlab_version: str) -> dict[str, Any]:
    """The environment of the run described by `info`, as JSON (recorded with each attempt)."""
    device = torch.device(info.device)
    return {
        "convlab_version": convlab_version,
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "torchvision_version": info.torchvision_version,
        "cuda_version": torch.version.cuda,
        "cudnn_version": _cudnn_version(),
        "device": info.device,
        "device_name": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "determinism": {
            # float32 on the CPU with seeded shuffling and init: a rerun there reproduces the history bit for bit
            "bitwise_reproducible": device.type == "cpu" and info.amp_dtype is None and not info.compiled,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "amp_dtype": info.amp_dtype,
            "channels_last": info.channels_last,
            "compiled": info.compiled,
        },
        "dataset": info.dataset,
        "dataset_checksum": info.dataset_checksum,
        "train_size": info.train_size,
        "test_size": info.test_size,
        "init_from": info.init_from,  # fine-tuning: the source checkpoint (job, epoch, sha256) and what was loaded
    }
