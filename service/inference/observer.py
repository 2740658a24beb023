"""What the prediction service reports as it works (service/telemetry turns it into Prometheus metrics)."""

from typing import Literal, Protocol

CacheEvent = Literal["hit", "miss", "eviction"]


class InferenceObserver(Protocol):
    """Receives timings and counts from the predictor, its batchers and its model cache."""

    def predicted(self, seconds: float) -> None:
        """A predict request was answered after `seconds`."""

    def batched(self, size: int, waits: list[float]) -> None:
        """A forward pass ran on `size` images, for requests that had waited `waits` seconds for it."""

    def cached(self, event: CacheEvent) -> None:
        """The model cache had a hit, a miss, or evicted a model."""

    def served(self, model: str, version: int, seconds: float) -> None:
        """A registered model's version ran a forward pass for a request, `seconds` after it arrived."""


class NoObserver:
    """Reports nowhere (scripts, tests of the inference code alone)."""

    def predicted(self, seconds: float) -> None:
        pass

    def batched(self, size: int, waits: list[float]) -> None:
        pass

    def cached(self, event: CacheEvent) -> None:
        pass

    def served(self, model: str, version: int, seconds: float) -> None:
        pass
