"""The LRU cache of loaded checkpoints, and a short-lived memo of which checkpoint a request means."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch

from service.inference.observer import InferenceObserver, NoObserver
from service.training.checkpoints import LoadedCheckpoint, load_checkpoint


class ModelCache:
    """A thread-safe LRU cache of loaded checkpoints, keyed by (job id, checkpoint id, sha256)."""

    def __init__(self, capacity: int, *, lookup_ttl_s: float = 1.0, observer: InferenceObserver | None = None) -> None:
        self.capacity = capacity
        self.observer = observer or NoObserver()
        self.lookup_ttl_s = lookup_ttl_s
        self._items: OrderedDict[Hashable, LoadedCheckpoint] = OrderedDict()
        self._lookups: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()
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

    def get(self, key: Hashable, read: Callable[[], bytes], device: torch.device) -> LoadedCheckpoint:
        """The loaded checkpoint for `key`, reading and loading it with `read()` on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                self.observer.cached("hit")
                return self._items[key]
        loaded = load_checkpoint(read())
        loaded.model.to(device).eval()
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
