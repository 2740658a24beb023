"""Device choice and the CUDA fast path (channels_last, bf16 autocast, cudnn.benchmark, torch.compile)."""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from models.catalog import get_model_info
from service.errors import InvalidInput


@dataclass(frozen=True)
class Runtime:
    """How tensors are laid out and computed on the chosen device."""

    device: torch.device
    amp_dtype: torch.dtype | None  # bf16 autocast on CUDA, None (float32) on CPU for exact determinism
    channels_last: bool
    compiled: bool
    sync_every: int  # steps between host syncs for loss values (1 on CPU, where a sync costs nothing)

    def autocast(self) -> AbstractContextManager[object]:
        """The autocast context for forward passes (a no-op on CPU)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """Put a 4-D batch in the memory format the model expects."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def resolve_device(name: str) -> torch.device:
    """`auto` is the first CUDA device when there is one, else the CPU; refuse devices that do not exist."""
    if name == "auto":
        return _auto_device()
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInput(f"unknown device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {name!r} requested but CUDA is not available")
    return device


@lru_cache(maxsize=1)  # asked on every predict; whether this process has CUDA does not change while it runs
def _auto_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_runtime(device: torch.device, *, compile: bool, architecture: str = "") -> Runtime:
    """The fast path for `device`: bf16 + channels_last on CUDA; float32 (exact, deterministic) on CPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return Runtime(device, torch.bfloat16, channels_last=True, compiled=compile, sync_every=50)
    channels_last = bool(architecture) and get_model_info(architecture).cpu_channels_last
    return Runtime(device, None, channels_last=channels_last, compiled=compile, sync_every=1)


def prepare_model(model: nn.Module, runtime: Runtime) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """Move `model` to the device and layout; return it and the callable to run forward (maybe compiled)."""
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if runtime.compiled:
        return model, torch.compile(model)
    return model, model
