"""Launching one run across N local processes: the process group's lifetime, and `fit_distributed`.

The worker spawns its ranks itself (service/worker/ranks.py); `fit_distributed` is the same launch without a
database, for tests and benchmarks: rank 0's result comes back to the caller.
"""

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessContext, start_processes

from service.jobspec.spec import JobSpec
from service.records import StepRecord
from service.training.engine import fit
from service.training.group import Group
from service.training.records import Callbacks, FitResult
from service.training.runtime import resolve_device

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (for the group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rank_device(device: str, rank: int) -> torch.device:
    """The device of `rank`: the CPU for every rank, or one GPU each counting up from the worker's device."""
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return resolved
    return torch.device("cuda", (resolved.index or 0) + rank)


@contextmanager
def process_group(rank: int, world: int, *, port: int, device: torch.device) -> Iterator[Group]:
    """Join the group of `world` local processes meeting on `port` (NCCL on GPUs, else gloo); leave it after."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # The ranks share the machine: split the intra-op threads a single process would have used.
    torch.set_num_threads(max(1, torch.get_num_threads() // world))
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        yield Group(rank, world)
    finally:
        dist.destroy_process_group()


@dataclass
class _StepCollector(Callbacks):
    steps: list[StepRecord] = field(default_factory=list)

    def on_step(self, record: StepRecord) -> None:
        self.steps.append(record)


@dataclass(frozen=True)
class GroupResult:
    """Rank 0's outcome of `fit_distributed`, and the loss records it reported."""

    result: FitResult
    steps: list[StepRecord]


def _fit_rank(
    rank: int,
    spec: JobSpec,
    data_dir: Path,
    resume_from: bytes | None,
    device: str,
    port: int,
    results: "mp.SimpleQueue[GroupResult]",
) -> None:
    world = spec.processes
    on = rank_device(device, rank)
    with process_group(rank, world, port=port, device=on) as group:
        collector = _StepCollector()
        result = fit(spec, data_dir=data_dir, callbacks=collector, resume_from=resume_from, device=str(on), group=group)
        if group.reports:
            results.put(GroupResult(result, collector.steps))


def fit_distributed(
    spec: JobSpec, *, data_dir: Path, resume_from: bytes | None = None, device: str = "cpu"
) -> GroupResult:
    """Train `spec` across `spec.distributed.processes` local processes; rank 0's result and loss records."""
    context = mp.get_context("spawn")
    results: mp.SimpleQueue[GroupResult] = context.SimpleQueue()
    args = (spec, Path(data_dir), resume_from, device, free_port(), results)
    group: ProcessContext = start_processes(  # type: ignore[no-untyped-call]
        _fit_rank, args=args, nprocs=spec.processes, join=False, start_method="spawn"
    )
    received: list[GroupResult] = []
    # Read while waiting: rank 0 cannot exit before its (large) result has gone through the pipe.
    while not group.join(timeout=0.1):
        if not received and not results.empty():
            received.append(results.get())
    return received[0] if received else results.get()
