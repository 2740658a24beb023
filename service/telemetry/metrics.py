"""The API process's Prometheus metrics, on a registry of its own (so that each app, and each test, starts at 0).

With several API processes (`convlab serve --api-workers N`), a scrape reaches one of them, so each must answer
for all: prometheus_client's multiprocess mode. The launcher names a fresh directory in PROMETHEUS_MULTIPROC_DIR;
every process then keeps its counters and histograms in files there, and a scrape sums them all.

Labels are bounded: a route *template* (`/jobs/{job_id}`), never a raw path or an id; a method from HTTP's
small set; a status code; an architecture name from the registry.
"""

import os
import platform

import torch
from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.multiprocess import MultiProcessCollector

from service import __version__
from service.inference.observer import CacheEvent

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
MAX_MODEL_LABELS = 64  # (model, version) pairs one process labels by name; later ones count as "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# prometheus_client's own switch, read by the library itself when it is imported (so not a CONVLAB_ setting).
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    """Whether this process shares its metrics with its sibling API processes through files."""
    return bool(os.environ.get(MULTIPROCESS_VARIABLE))


def model_metrics(registry: CollectorRegistry | None) -> tuple[Counter, Histogram]:
    """Requests per registered model and version, and their latency (labels bounded by MAX_MODEL_LABELS)."""
    requests = Counter(
        "convlab_model_requests", "Requests served by a registered model's version.", ["model", "version"],
        registry=registry,
    )  # fmt: skip
    duration = Histogram(
        "convlab_model_request_duration_seconds",
        "Time from a request by model name to its forward pass's answer.",
        ["model", "version"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    return requests, duration


class Metrics:
    """Counters and histograms the API process updates as it works; also the predictor's observer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_mode()
        # Shared: the metrics live in files and the registry reads every process's files at each scrape.
        r = None if self.multiprocess else self.registry
        if self.multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        self.http_requests = Counter(
            "convlab_http_requests", "HTTP requests answered.", ["route", "method", "status"], registry=r
        )
        self.http_duration = Histogram(
            "convlab_http_request_duration_seconds",
            "Time to answer an HTTP request (for streams: until the stream ended).",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}  # by route template
        self.predict_duration = Histogram(
            "convlab_predict_duration_seconds", "Time to answer a predict request.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.predict_queue_wait = Histogram(
            "convlab_predict_queue_wait_seconds",
            "Time a predict request waited in its model's batcher before its forward pass began.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.predict_batch_size = Histogram(
            "convlab_predict_batch_size_images", "Images in one forward pass.", buckets=BATCH_BUCKETS, registry=r
        )
        self.cache = {
            event: Counter(f"convlab_model_cache_{name}", f"Model cache {name}.", registry=r)
            for event, name in (("hit", "hits"), ("miss", "misses"), ("eviction", "evictions"))
        }
        self.model_requests, self.model_duration = model_metrics(r)
        self._model_labels: set[tuple[str, str]] = set()
        # The same in every process, so each answers it alone (an Info cannot live in multiprocess files).
        Info("convlab_build", "convlab's version and runtime.", registry=self.registry).info(
            {"version": __version__, "python": platform.python_version(), "torch": torch.__version__}
        )

    def observe_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP answer and its latency."""
        method = method if method in METHODS else "OTHER"  # a client's own methods would make label sets unbounded
        key = (route, method, status)
        if (children := self._http_children.get(key)) is None:
            # Finding a labelled child costs more than counting (a lock, label checks): once per label set.
            children = self.http_requests.labels(route, method, str(status)), self.http_duration.labels(route, method)
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    # InferenceObserver
    def predicted(self, seconds: float) -> None:
        """A predict request was answered after `seconds`."""
        self.predict_duration.observe(seconds)

    def batched(self, size: int, waits: list[float]) -> None:
        """A forward pass over `size` images, for requests that waited `waits`."""
        self.predict_batch_size.observe(size)
        for wait in waits:
            self.predict_queue_wait.observe(max(0.0, wait))

    def cached(self, event: CacheEvent) -> None:
        """A model cache hit, miss or eviction."""
        self.cache[event].inc()

    def served(self, model: str, version: int, seconds: float) -> None:
        """A request served by `model`'s `version`: labelled by both, up to MAX_MODEL_LABELS pairs."""
        labels = (model, str(version))
        if labels not in self._model_labels:
            if len(self._model_labels) >= MAX_MODEL_LABELS:
                labels = ("other", "other")
            else:
                self._model_labels.add(labels)
        self.model_requests.labels(*labels).inc()
        self.model_duration.labels(*labels).observe(seconds)
