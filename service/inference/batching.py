"""Dynamic batching: concurrent predict requests for one model share forward passes, off the event loop."""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
from anyio import CapacityLimiter, to_thread

from service.inference.observer import InferenceObserver, NoObserver

# With no delay, a batch still waits this many turns of the event loop: the requests it has already received run to
# their submit first. BN-LeNet, wrk -c32: 1 API process 1,850 req/s (600 us CPU each) with no wait, 2,100-2,300
# with 2 ms, 2,580-2,640 (380 us) with 3 turns; 2 processes 3,460-3,580, 2,750-2,920 and 3,920-4,120.
GATHER_TURNS = 3
# What turns a request's batch into the model's input (images.model_input for its checkpoint); None: it is already.
Prepare = Callable[[torch.Tensor], torch.Tensor] | None


def forward(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Logits [N, K] (float32, on the CPU) for a preprocessed batch, under inference mode."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits: torch.Tensor = model(batch.to(device))
        return logits.float().cpu()


@dataclass(frozen=True)
class _Waiting:
    """A request in a batcher's queue: its model, images and their transform, the future of its answer and when
    it arrived."""

    model: torch.nn.Module
    batch: torch.Tensor
    prepare: Prepare
    future: asyncio.Future[torch.Tensor]
    queued_at: float


def run_batch(items: Sequence[_Waiting]) -> torch.Tensor:
    """The logits of a forward pass over every item's images, in order. A batcher serves one checkpoint, so its
    requests share one transform: batches of one dtype are joined first and transformed once."""
    first = items[0]
    if all(item.batch.dtype == first.batch.dtype for item in items):
        joined = first.batch if len(items) == 1 else torch.cat([item.batch for item in items])
        batch = joined if first.prepare is None else first.prepare(joined)
    else:
        batch = torch.cat([item.batch if item.prepare is None else item.prepare(item.batch) for item in items])
    return forward(first.model, batch)


class DynamicBatcher:
    """Joins concurrent predict requests for one model into shared forward passes (off the event loop).

    A batch waits at most `max_delay_s` for requests to join once its first one is waiting, and holds up to
    `max_batch` images (a single larger request goes alone); requests that arrive while a forward pass runs
    form the next batch, so batches grow with the load.

    A request costs an append and, when it fills the batch, an event: one timer per batch rather than a queue
    read with its own timeout per request, which at hundreds of small requests per second was a visible share
    of the event loop's time.
    """

    def __init__(
        self,
        *,
        max_batch: int,
        max_delay_s: float,
        limiter: CapacityLimiter | None = None,
        observer: InferenceObserver | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.limiter = limiter
        self.observer = observer or NoObserver()
        self._waiting: deque[_Waiting] = deque()
        self._images = 0  # images waiting in `_waiting`
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    @property
    def busy(self) -> bool:
        """Whether requests are waiting or a batch is in flight."""
        return bool(self._waiting) or (self._task is not None and not self._task.done())

    async def submit(self, model: torch.nn.Module, batch: torch.Tensor, prepare: Prepare = None) -> torch.Tensor:
        """Logits for `batch` (through `prepare`, in the worker thread), computed alone or together with other
        waiting requests."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[torch.Tensor] = loop.create_future()
        waiting = _Waiting(model, batch, prepare, future, loop.time())
        if self.max_batch <= 1:
            self.observer.batched(batch.shape[0], [0.0])
            return await to_thread.run_sync(run_batch, [waiting], limiter=self.limiter)
        self._waiting.append(waiting)
        self._images += batch.shape[0]
        if self._images >= self.max_batch:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _gather(self) -> list[_Waiting]:
        """The next batch: wait (up to the delay, else a few turns of the loop) until it is full, then take up to
        `max_batch` images."""
        if self._images < self.max_batch and self.max_delay_s > 0:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_delay_s):
                    await self._full.wait()
        for _ in range(GATHER_TURNS if self.max_delay_s <= 0 else 0):
            if self._images >= self.max_batch:
                break
            await asyncio.sleep(0)  # requests the event loop already holds reach this batch, not the next
        items = [self._waiting.popleft()]
        count = items[0].batch.shape[0]
        while self._waiting and count < self.max_batch:
            items.append(self._waiting.popleft())
            count += items[-1].batch.shape[0]
        self._images -= count
        return items

    async def _drain(self) -> None:
        while self._waiting:
            items = await self._gather()
            started = asyncio.get_running_loop().time()
            try:
                images = sum(item.batch.shape[0] for item in items)
                self.observer.batched(images, [started - item.queued_at for item in items])
                logits = await to_thread.run_sync(run_batch, items, limiter=self.limiter)
            except Exception as exc:  # hand the failure to every waiting request
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batches += 1
            for part, item in zip(torch.split(logits, [item.batch.shape[0] for item in items]), items, strict=True):
                if not item.future.done():
                    item.future.set_result(part)

    async def aclose(self) -> None:
        """Wait for the batches in flight."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class BatcherPool:
    """One DynamicBatcher per loaded model (cache key); idle batchers are dropped when the pool grows."""

    def __init__(
        self,
        *,
        max_batch: int,
        max_delay_s: float,
        limiter: CapacityLimiter | None = None,
        max_idle: int = 64,
        observer: InferenceObserver | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.limiter = limiter
        self.observer = observer
        self.max_idle = max_idle
        self._batchers: dict[Hashable, DynamicBatcher] = {}

    def get(self, key: Hashable) -> DynamicBatcher:
        """The batcher for `key`, created on first use."""
        if key not in self._batchers:
            if len(self._batchers) >= self.max_idle:
                self._batchers = {k: b for k, b in self._batchers.items() if b.busy}  # aclose waits for the rest
            self._batchers[key] = DynamicBatcher(
                max_batch=self.max_batch, max_delay_s=self.max_delay_s, limiter=self.limiter, observer=self.observer
            )
        return self._batchers[key]

    async def aclose(self) -> None:
        """Wait for every batch in flight."""
        await asyncio.gather(*(b.aclose() for b in self._batchers.values()))
