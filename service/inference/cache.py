"""The LRU cache of loaded checkpoints, single-flight loading, and a short-lived memo of which checkpoint a
request means."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import torch

from service.inference.observer import InferenceObserver, NoObserver
from service.training.checkpoints import LoadedCheckpoint, load_checkpoint

T = TypeVar("T")
Prepare = Callable[[Hashable, LoadedCheckpoint, torch.device], LoadedCheckpoint]


class SingleFlight(Generic[T]):
    """Concurrent calls for one key run `make` once; the others wait for its result (or its exception).

    Hand-written (20 lines): Python's libraries offer this for asyncio only, and model loads run in threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Future[T]] = {}

    def do(self, key: Hashable, make: Callable[[], T]) -> T:
        """`make()`, or the result of the call for `key` already in flight."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if not leader:
            return flight.result()
        try:
            result = make()
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._flights[key]
        flight.set_result(result)
        return result


def on_device(key: Hashable, loaded: LoadedCheckpoint, device: torch.device) -> LoadedCheckpoint:
    """The torch backend: the checkpoint's own model, moved to `device` in eval mode."""
    loaded.model.to(device).eval()
    return loaded


class ModelCache:
    """A thread-safe LRU cache of loaded checkpoints, keyed by (job id, checkpoint id, sha256).

    Concurrent misses for one key load it once (SingleFlight); `prepare` turns a freshly loaded CPU
    checkpoint into what serves it (moved to the device, or an onnxruntime model: service/inference/backends.py).
    """

    def __init__(
        self,
        capacity: int,
        *,
        lookup_ttl_s: float = 1.0,
        observer: InferenceObserver | None = None,
        prepare: Prepare = on_device,
    ) -> None:
        self.capacity = capacity
        self.observer = observer or NoObserver()
        self.lookup_ttl_s = lookup_ttl_s
        self.prepare = prepare
        self._items: OrderedDict[Hashable, LoadedCheckpoint] = OrderedDict()
        self._lookups: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._loads: SingleFlight[LoadedCheckpoint] = SingleFlight()
        self.hits = 0
        self.misses = 0

    def recall(self, lookup: Hashable) -> Any:
        """A remembered lookup result (which checkpoint a request means) younger than `lookup_ttl_s`, or None."""
        with self._lock:
            found = self._lookups.get(lookup)
        return found[1] if found is not None and found[0] > time.monotonic() else None

    def remember(self, lookup: Hashable, value: Any) -> None:
        """Remember `value` for `lookup_ttl_s`, so hot prediction paths skip the database."""
        with self._lock:
            if len(self._lookups) > 4096:
                self._lookups.clear()
            self._lookups[lookup] = (time.monotonic() + self.lookup_ttl_s, value)

    def holds(self, key: Hashable) -> bool:
        """Whether `key` is loaded now (no hit counted, no LRU move): the predictor's test for its inline path."""
        with self._lock:
            return key in self._items

    def get(self, key: Hashable, read: Callable[[], bytes], device: torch.device) -> LoadedCheckpoint:
        """The loaded checkpoint for `key`, reading and loading it with `read()` on a miss (once at a time)."""
        found = self._hit(key)
        if found is not None:
            return found
        return self._loads.do(key, lambda: self._load(key, read, device))

    def replace(self, key: Hashable, loaded: LoadedCheckpoint) -> bool:
        """Serve `loaded` for `key` from now on (a faster backend for the same checkpoint), if `key` is still
        cached; False if it was evicted meanwhile."""
        with self._lock:
            if key not in self._items:
                return False
            self._items[key] = loaded
        return True

    def _hit(self, key: Hashable) -> LoadedCheckpoint | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            found = self._items[key]
        self.observer.cached("hit")
        return found

    def _load(self, key: Hashable, read: Callable[[], bytes], device: torch.device) -> LoadedCheckpoint:
        found = self._hit(key)  # a flight that ended just before this one began may have loaded it
        if found is not None:
            return found
        loaded = self.prepare(key, load_checkpoint(read()), device)
        self.observer.cached("miss")
        with self._lock:
            self.misses += 1
            self._items[key] = loaded
            self._items.move_to_end(key)
            evicted = 0
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
                evicted += 1
        for _ in range(evicted):
            self.observer.cached("eviction")
        return loaded

    def __len__(self) -> int:
        return len(self._items)
