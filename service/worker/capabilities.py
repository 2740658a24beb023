"""What this worker can run: its device, found through torch (or simulated, in tests)."""

import os
import platform

import torch

from service.config import Settings
from service.storage.fleet import Capabilities
from service.training.runtime import resolve_device


def _host_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def detect_capabilities(device: str) -> Capabilities:
    """The capabilities of a worker training on `device` (auto, cpu, cuda, cuda:N).

    A worker pinned to one GPU (cuda:N) offers that GPU; `cuda` and `auto` on a GPU host offer all of them, so a
    job may train across them. On the CPU the count is the cores this process may use.
    """
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return Capabilities("cpu", platform.processor() or platform.machine() or "cpu", _host_memory(), cpu_cores())
    index = resolved.index if resolved.index is not None else 0
    props = torch.cuda.get_device_properties(index)
    count = 1 if resolved.index is not None else torch.cuda.device_count()
    return Capabilities("cuda", props.name, int(props.total_memory), count)


def worker_capabilities(settings: Settings) -> Capabilities:
    """This worker's capabilities; `settings.fleet.simulate_device` (tests only) replaces the detected kind."""
    detected = detect_capabilities(settings.device)
    simulated = settings.fleet.simulate_device
    if not simulated or simulated == detected.kind:
        return detected
    return Capabilities(simulated, f"simulated {simulated} ({detected.name})", detected.memory, detected.count)
