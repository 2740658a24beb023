"""Inference backends: torch (the checkpoint's own model) or onnxruntime (its verified ONNX export), or auto.

auto, the default, never makes a request wait for an export: a checkpoint is served by torch at once, while one
background thread exports it (stored, as `GET /jobs/{id}/export` stores it), and, the first time an
architecture (with its channels and input size) is loaded on a device, measures both backends: the best of 3
timed forward passes (after one warm-up) at batch 1 plus the same at the batcher's largest batch, with random
inputs. The faster is kept for that key for the life of the process; when it is onnxruntime, the cached entry
is swapped for the onnxruntime session (`ModelCache.replace`). Later loads of the same architecture on that
device reuse the verdict: with the export already stored, onnxruntime serves from the first request.
"""

import gc
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import replace
from typing import Literal

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from service.inference.cache import on_device
from service.inference.export import ExportRefused
from service.inference.exporter import Exporter
from service.training.checkpoints import LoadedCheckpoint

log = logging.getLogger("convlab.inference")
BackendName = Literal["torch", "onnxruntime", "auto"]


class OrtModel(nn.Module):
    """An onnxruntime session called like an nn.Module, so the batcher's `forward()` serves either backend.

    The batcher moves each batch to the device of the model's first parameter: the empty `anchor` keeps that
    on the CPU, where onnxruntime takes its (NumPy) inputs on every execution provider.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(np.asarray(self.session.run(None, {self.input_name: array})[0]))


def ort_session(data: bytes, device: torch.device, *, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime session for ONNX bytes: CUDA on a CUDA device when this onnxruntime has it, else CPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default (one per physical core)
    providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": str(device.index or 0)}))
    return ort.InferenceSession(data, sess_options=options, providers=providers)


def forward_seconds(model: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, *, repeats: int = 3) -> float:
    """The best of `repeats` timed forward passes on `example`, after one warm-up (under inference mode)."""
    with torch.inference_mode():
        model(example)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(example)
            if example.is_cuda:
                torch.cuda.synchronize(example.device)
            best = min(best, time.perf_counter() - start)
    return best


def measure(model: nn.Module, loaded: LoadedCheckpoint, device: torch.device, batches: tuple[int, ...]) -> float:
    """Seconds of the best forward pass at each batch size in `batches`, summed (random inputs)."""
    side, channels = loaded.input_size, loaded.in_channels
    anchor = next(model.parameters()).device
    total = 0.0
    for n in batches:
        example = torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(0)).to(anchor)
        total += forward_seconds(model, example)
    return total


class Backends:
    """What serves a loaded checkpoint (ModelCache's `prepare`): the torch model or an onnxruntime session."""

    def __init__(self, name: BackendName, exporter: Exporter, *, threads: int = 0, max_batch: int = 32) -> None:
        self.name = name
        self.exporter = exporter
        self.threads = threads
        self.batches = (1, max(1, max_batch))
        self.swap: Callable[[Hashable, LoadedCheckpoint], bool] = lambda key, loaded: False  # ModelCache.replace
        self._verdicts: dict[Hashable, str] = {}  # auto: (architecture, channels, size, device) -> backend
        self._lock = threading.Lock()
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convlab-backend")
        self._upgrades: list[Future[None]] = []

    def verdicts(self) -> dict[Hashable, str]:
        """What auto chose so far, per (architecture, channels, input size, device)."""
        with self._lock:
            return dict(self._verdicts)

    def prepare(self, key: Hashable, loaded: LoadedCheckpoint, device: torch.device) -> LoadedCheckpoint:
        """The checkpoint as the configured backend serves it now (a CPU checkpoint, fresh from the database)."""
        served = self._served_now(key, loaded, device)
        freeze_survivors()
        return served

    def _served_now(self, key: Hashable, loaded: LoadedCheckpoint, device: torch.device) -> LoadedCheckpoint:
        verdict_key = (loaded.architecture, loaded.in_channels, loaded.input_size, str(device))
        with self._lock:
            known = self._verdicts.get(verdict_key)
        if self.name == "torch" or known == "torch":
            return on_device(key, loaded, device)
        if self.name == "onnxruntime":
            ort_model = self._ort_model(key, loaded, device)  # exported from the CPU model before it moves
            return on_device(key, loaded, device) if ort_model is None else replace(loaded, model=ort_model)
        stored = self.exporter.stored_onnx(cache_ids(key)[1]) if known == "onnxruntime" else None
        if stored is not None:
            return replace(loaded, model=OrtModel(ort_session(stored, device, threads=self.threads)))
        on_torch = on_device(key, loaded, device)
        with self._lock:
            self._upgrades = [f for f in self._upgrades if not f.done()]
            self._upgrades.append(self._background.submit(self._upgrade, key, on_torch, device, verdict_key))
        return on_torch

    def settle(self, timeout: float | None = None) -> None:
        """Wait for the background exports and measurements started so far (tests; shutdown)."""
        with self._lock:
            pending = list(self._upgrades)
        wait_all(pending, timeout=timeout)

    def close(self) -> None:
        """Finish the background work in progress (it writes to the database) and drop what has not started."""
        self._background.shutdown(wait=True, cancel_futures=True)

    def _upgrade(self, key: Hashable, on_torch: LoadedCheckpoint, device: torch.device, verdict_key: Hashable) -> None:
        """auto, in the background: export `key`, decide the backend if its architecture is new, and serve the
        onnxruntime session from now on if that is the faster."""
        try:
            ort_model = self._ort_model(key, on_torch, device)
            if ort_model is None:
                return
            with self._lock:
                chosen = self._verdicts.get(verdict_key)
            if chosen is None:
                chosen = self._decide(verdict_key, on_torch, ort_model, device)
            if chosen == "onnxruntime":
                self.swap(key, replace(on_torch, model=ort_model))
        except Exception:  # torch keeps serving; the next load tries again
            log.exception("auto backend for %s: export or measurement failed; torch serves it", verdict_key)
        finally:
            freeze_survivors()

    def _decide(self, verdict_key: Hashable, on_torch: LoadedCheckpoint, ort: nn.Module, device: torch.device) -> str:
        torch_s, ort_s = (measure(m, on_torch, device, self.batches) for m in (on_torch.model, ort))
        chosen = "onnxruntime" if ort_s < torch_s else "torch"
        log.info("auto backend for %s: %s (torch %.4f s, onnxruntime %.4f s)", verdict_key, chosen, torch_s, ort_s)
        with self._lock:
            self._verdicts[verdict_key] = chosen
        return chosen

    def _ort_model(self, key: Hashable, loaded: LoadedCheckpoint, device: torch.device) -> OrtModel | None:
        """The checkpoint's verified export in an onnxruntime session; None (torch serves) if it was refused."""
        job, checkpoint = cache_ids(key)
        try:
            data = self.exporter.onnx_for(job, checkpoint, loaded)
        except ExportRefused as refused:
            log.warning("serving job %s with torch: %s", job, refused.detail)
            return None
        return OrtModel(ort_session(data, device, threads=self.threads))


def freeze_survivors() -> None:
    """In a process whose start-up heap is frozen (service/main.py, frozen_heap): collect once, then put what
    survived out of the garbage collector's sight too. A model loaded, or exported to ONNX, after start leaves
    thousands of long-lived objects (the exporter's caches above all) that every full collection then walked: that
    was the serving table's predict p99 (docs/benchmarks-serve.md, step 7). One collection per load, in the
    loading thread, instead of one every few seconds under load."""
    if not gc.get_freeze_count():
        return  # not frozen at start (a Predictor without the app): leave the collector as it is
    start = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.debug(
        "heap frozen again after a load: %.1f ms, %d objects frozen",
        (time.perf_counter() - start) * 1e3,
        gc.get_freeze_count(),
    )


def cache_ids(key: Hashable) -> tuple[int, int]:
    """The job id and checkpoint id of a predictor's cache key (job id, checkpoint id, sha256)."""
    if not isinstance(key, tuple):
        raise TypeError(f"expected the predictor's (job id, checkpoint id, sha256) cache key, got {key!r}")
    return int(key[0]), int(key[1])
