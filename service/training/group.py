"""A run's place in a data-parallel group: which examples it trains on, how results combine, who reports.

Each of the `world` processes takes every `world`-th example of each global batch (the seeded epoch order is
the same everywhere, as with DistributedSampler), so the global batch, the steps and the learning-rate schedule
are those of one process. Gradients are averaged by DistributedDataParallel; BatchNorm normalizes with the
global batch's statistics. Rank 0 alone reports through the callbacks; `should_stop` is rank 0's answer,
broadcast, so every process stops at the same batch.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models.batchnorm import AllReduceBatchNorm, BatchNorm
from service.records import EpochRecord, StepRecord
from service.training.records import Callbacks, Checkpoint, Progress, RunInfo
from service.training.runtime import Runtime


@dataclass(frozen=True)
class Group:
    """This process's rank among `world` processes of one job (the process group is already initialized)."""

    rank: int
    world: int

    @property
    def reports(self) -> bool:
        """Whether this process reports (history, checkpoints): rank 0."""
        return self.rank == 0

    def take(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch (of indices or examples): every world-th, from its rank."""
        return batch[self.rank :: self.world]

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the group, in place."""
        dist.all_reduce(tensor)
        return tensor


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm use the global batch: SyncBatchNorm on GPUs, AllReduceBatchNorm on the CPU.

    The from-scratch BatchNorm switches to its distributed mode in place. State dict keys do not change.
    """
    for module in model.modules():
        if isinstance(module, BatchNorm):
            module.sync = True
    if device.type == "cuda":
        synced: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
        return synced
    return _convert_cpu(model)


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, AllReduceBatchNorm):
        synced = AllReduceBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        return synced.to(next(module.buffers(), torch.empty(0)).device)
    for name, child in module.named_children():
        module.add_module(name, _convert_cpu(child))
    return module


def data_parallel(model: nn.Module, runtime: Runtime) -> Callable[[torch.Tensor], torch.Tensor]:
    """The forward callable of `model` (already synced and on the device) under DistributedDataParallel."""
    device_ids = [runtime.device] if runtime.device.type == "cuda" else None
    ddp = DistributedDataParallel(model, device_ids=device_ids)
    return torch.compile(ddp) if runtime.compiled else ddp


class GroupCallbacks(Callbacks):
    """Rank 0's callbacks for the whole group: the other ranks report nothing and stop when rank 0 says so."""

    def __init__(self, inner: Callbacks, group: Group, device: torch.device) -> None:
        self.inner = inner
        self.group = group
        self.flag = torch.zeros(1, dtype=torch.int32, device=device)

    def on_start(self, info: RunInfo) -> None:
        if self.group.reports:
            self.inner.on_start(info)

    def on_step(self, record: StepRecord) -> None:
        if self.group.reports:
            self.inner.on_step(record)

    def on_progress(self, progress: Progress) -> None:
        if self.group.reports:
            self.inner.on_progress(progress)

    def on_epoch(self, record: EpochRecord) -> None:
        if self.group.reports:
            self.inner.on_epoch(record)

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        if self.group.reports:
            self.inner.on_checkpoint(checkpoint)

    def should_stop(self) -> bool:
        """Rank 0's decision, broadcast (every rank calls this at the same points of the loop)."""
        self.flag.fill_(int(self.group.reports and self.inner.should_stop()))
        dist.broadcast(self.flag, src=0)
        return bool(self.flag.item())
