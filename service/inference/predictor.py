"""The prediction service: which checkpoint a request means, the loaded model, the input batch, the forward pass."""

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from anyio import CapacityLimiter, to_thread
from sqlalchemy.orm import Session, sessionmaker

from service.config import ServingSettings
from service.errors import Conflict, NotFound
from service.inference.backends import Backends
from service.inference.batching import BatcherPool
from service.inference.cache import ModelCache
from service.inference.exporter import Exporter
from service.inference.images import ImageLimits, model_input, native_batch
from service.inference.inputs import RawInputs, decode_all, parse_json_inputs
from service.inference.names import VersionReader
from service.inference.observer import InferenceObserver, NoObserver
from service.inference.shared_reads import SharedReads
from service.inference.shedding import LoadShedder
from service.inference.tensors import BatchOf
from service.storage import jobs
from service.storage.registry import ResolvedVersion
from service.training.checkpoints import LoadedCheckpoint
from service.training.runtime import resolve_device

# Bodies up to this size are prepared on the event loop when their model is loaded (Predictor._cheap).
INLINE_BODY_BYTES = 16 * 1024


@dataclass(frozen=True)
class Choice:
    """Which checkpoint a request uses: its model-cache key (job id, checkpoint id, sha256) and epoch."""

    key: tuple[int, int, str]
    epoch: int


@dataclass(frozen=True)
class Prediction:
    class_index: int
    label: str
    probability: float
    top_k: list[tuple[int, str, float]]


@dataclass(frozen=True)
class Predictions:
    """One prediction per input image, in order, and the checkpoint that made them."""

    job_id: int
    checkpoint_epoch: int
    checkpoint_sha256: str
    items: list[Prediction]


@dataclass(frozen=True)
class Served:
    """A forward pass by a registered version: which version served, its loaded checkpoint, logits [N, K]."""

    version: ResolvedVersion
    loaded: LoadedCheckpoint
    logits: torch.Tensor


def to_predictions(probs: torch.Tensor, class_names: Sequence[str], top_k: int) -> list[Prediction]:
    """The most likely class and the `top_k` best, per row of `probs`."""
    k = min(top_k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    out = []
    for row_v, row_i in zip(values.tolist(), indices.tolist(), strict=True):
        ranked = [(i, class_names[i], p) for i, p in zip(row_i, row_v, strict=True)]
        out.append(Prediction(ranked[0][0], ranked[0][1], ranked[0][2], ranked))
    return out


class Predictor:
    """Serves trained jobs: built once by the app's lifespan, shared by every predict request."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: ServingSettings,
        *,
        device: str,
        observer: InferenceObserver | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.device = device
        self.observer = observer or NoObserver()
        self.limits = ImageLimits(max_images=settings.predict_max_images, max_pixels=settings.predict_max_pixels)
        # Exports verify on the dataset's test images when `data_dir` has them (service/inference/export.py).
        self.exporter = Exporter(session_factory, data_dir=data_dir)
        self.backends = Backends(
            settings.inference_backend,
            self.exporter,
            threads=settings.inference_threads,
            max_batch=settings.predict_batch_max_size,
        )
        self.cache = ModelCache(settings.model_cache_size, observer=self.observer, prepare=self.backends.prepare)
        self.backends.swap = self.cache.replace  # auto's background switch to onnxruntime
        # Few threads do CPU work for predictions at a time: with dozens, they and the event loop fight for
        # the GIL and tail latency explodes. Waiting requests queue cheaply on the event loop instead.
        self.limiter = CapacityLimiter(settings.predict_threads or max(2, os.cpu_count() or 2))
        self.batchers = BatcherPool(
            max_batch=settings.predict_batch_max_size,
            max_delay_s=settings.predict_batch_max_delay_ms / 1000,
            limiter=self.limiter,
            observer=self.observer,
        )
        self.names = SharedReads(VersionReader(session_factory))
        self.shedder = LoadShedder(
            max_wait_s=settings.predict_max_wait_ms / 1000, floor=settings.predict_batch_max_size
        )

    async def predict(self, job_id: int, raw: RawInputs | bytes, *, epoch: int | None, top_k: int) -> Predictions:
        """Classify the images of `raw` (JSON bytes are parsed off the event loop) with the job's checkpoint;
        Overloaded (503) at once when more requests are in flight than can be served within predict_max_wait_ms."""
        start = time.perf_counter()
        with self.shedder.admit():  # 503 at once when the requests ahead would take too long
            if self._cheap(job_id, epoch, raw):  # no database, no load, a small body: a thread hop costs more
                choice, loaded, batch = self._prepare(job_id, epoch, raw)
            else:
                prepare = self._prepare
                choice, loaded, batch = await to_thread.run_sync(prepare, job_id, epoch, raw, limiter=self.limiter)
            logits = await self._forward(choice, loaded, batch)
        probs = torch.softmax(logits, dim=1)
        answer = Predictions(job_id, choice.epoch, choice.key[2], to_predictions(probs, loaded.class_names, top_k))
        self.observer.predicted(time.perf_counter() - start)
        return answer

    async def run_version(
        self, name: str, *, alias: str | None, version: int | None, batch_of: BatchOf, inline: bool = False
    ) -> Served:
        """The logits of the version `name` means now (read in the database after the call began, so an alias
        move shows on the next request in every process) for the batch `batch_of` makes from its loaded checkpoint.

        The database read takes a thread of its own (not a prediction slot: it waits, it does not compute) and
        answers every request for the same name that arrived while the previous read ran (SharedReads); when the
        model is loaded and the caller says the batch is cheap (`inline`), it is made on the event loop.
        """
        start = time.perf_counter()
        with self.shedder.admit():  # 503 at once when the requests ahead would take too long
            resolved = await self.names.get((name, alias, version))
            choice = Choice((resolved.job_id, resolved.checkpoint_id, resolved.checkpoint_sha256), resolved.epoch)
            if inline and self.cache.holds(choice.key):
                loaded, batch = self._load_and_batch(choice, batch_of)
            else:
                load_and_batch = self._load_and_batch
                loaded, batch = await to_thread.run_sync(load_and_batch, choice, batch_of, limiter=self.limiter)
            logits = await self._forward(choice, loaded, batch)
        self.observer.served(name, resolved.version, time.perf_counter() - start)
        return Served(resolved, loaded, logits)

    async def predict_version(
        self, name: str, raw: RawInputs | bytes, *, alias: str | None, version: int | None, top_k: int
    ) -> tuple[ResolvedVersion, Predictions]:
        """`predict` by a registered model's name: the version an alias (default `prod`) or number names."""
        inline = self._small(raw)
        served = await self.run_version(
            name, alias=alias, version=version, batch_of=lambda loaded: self._batch(loaded, raw), inline=inline
        )
        resolved, probs = served.version, torch.softmax(served.logits, dim=1)
        items = to_predictions(probs, served.loaded.class_names, top_k)
        return resolved, Predictions(resolved.job_id, resolved.epoch, resolved.checkpoint_sha256, items)

    async def aclose(self) -> None:
        """Wait for the name reads and batches in flight, and the backends' background exports."""
        await self.names.aclose()
        await self.batchers.aclose()
        await to_thread.run_sync(self.backends.close)

    def choose(self, job_id: int, epoch: int | None) -> Choice:
        """The checkpoint for (job, epoch), looked up in the database at most once per second per pair."""
        remembered = self.cache.recall((job_id, epoch))
        if isinstance(remembered, Choice):
            return remembered
        with self.session_factory() as session:
            job = jobs.get_job(session, job_id)
            kept = jobs.list_checkpoints(session, job_id)
            try:
                chosen = jobs.select_checkpoint(kept, job_id, epoch, metric=job.best_metric)
            except NotFound:  # name the query parameter that asked for it
                raise NotFound(f"checkpoint: job {job_id} kept no checkpoint for epoch {epoch}") from None
            choice = Choice((job_id, chosen.id, chosen.sha256), chosen.epoch)
        self.cache.remember((job_id, epoch), choice)
        return choice

    def _cheap(self, job_id: int, epoch: int | None, raw: RawInputs | bytes) -> bool:
        """Whether preparing this request can run on the event loop: its checkpoint choice is remembered, the
        model is loaded and the body is small (one image decodes in tens of microseconds)."""
        if not self._small(raw):
            return False
        remembered = self.cache.recall((job_id, epoch))
        return isinstance(remembered, Choice) and self.cache.holds(remembered.key)

    def read(self, choice: Choice) -> bytes:
        """The checkpoint bytes of `choice`; 409 if it was replaced since it was chosen."""
        data = jobs.read_checkpoint_data(self.session_factory, choice.key[1])
        if data is None:
            raise Conflict(f"checkpoint of epoch {choice.epoch} was just replaced; retry the request")
        return data

    def _prepare(
        self, job_id: int, epoch: int | None, raw: RawInputs | bytes
    ) -> tuple[Choice, LoadedCheckpoint, torch.Tensor]:
        """Everything before the forward pass, in one trip to a worker thread: checkpoint, model, input batch."""
        choice = self.choose(job_id, epoch)
        loaded = self.cache.get(choice.key, lambda: self.read(choice), resolve_device(self.device))
        return choice, loaded, self._batch(loaded, raw)

    def _batch(self, loaded: LoadedCheckpoint, raw: RawInputs | bytes) -> torch.Tensor:
        """The request's images as a native uint8 batch: the batcher transforms them (`_forward`)."""
        parsed = parse_json_inputs(raw, self.limits) if isinstance(raw, bytes) else raw
        images = decode_all(parsed, in_channels=loaded.in_channels, limits=self.limits)
        return native_batch(loaded, images)

    async def _forward(self, choice: Choice, loaded: LoadedCheckpoint, batch: torch.Tensor) -> torch.Tensor:
        """The logits of `batch` (native uint8 images, or the model's float input) from a shared forward pass."""
        return await self.batchers.get(choice.key).submit(loaded.model, batch, partial(model_input, loaded))

    @staticmethod
    def _small(raw: RawInputs | bytes) -> bool:
        """Whether a predict body is cheap enough to prepare on the event loop (see `_cheap`)."""
        size = len(raw) if isinstance(raw, bytes) else sum(len(item) for item in raw.items if isinstance(item, bytes))
        return size <= INLINE_BODY_BYTES and not (isinstance(raw, RawInputs) and raw.kind == "pixels")

    def _load_and_batch(self, choice: Choice, batch_of: BatchOf) -> tuple[LoadedCheckpoint, torch.Tensor]:
        loaded = self.cache.get(choice.key, lambda: self.read(choice), resolve_device(self.device))
        return loaded, batch_of(loaded)
