"""The model cache under real threads: concurrent misses for one checkpoint load it once; an entry is replaced
(a faster backend for the same checkpoint) only while it is cached."""

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from service.inference.cache import ModelCache, SingleFlight
from service.jobspec.spec import JobRequest
from service.training import fit
from tests.training.recorder import Recorder

THREADS = 8


@pytest.fixture(scope="module")
def checkpoint_bytes(data_dir: Path) -> bytes:
    spec = JobRequest(architecture="bn_lenet", epochs=1, train_subset=64, test_subset=32, batch_size=32).resolve()
    recorder = Recorder()
    fit(spec, data_dir=data_dir, callbacks=recorder, device="cpu")
    return recorder.checkpoints[-1].data


def run_together(target, n: int = THREADS) -> list[object]:
    """Start `n` threads on `target(i)` at once and gather their results (or exceptions) in order."""
    results: list[object] = [None] * n
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_concurrent_misses_for_one_checkpoint_load_it_once(checkpoint_bytes):
    cache = ModelCache(2)
    reads = []
    entered = [0]
    everyone_asked = threading.Condition()

    def read() -> bytes:
        # Hold the load until every thread has asked for the model: without single-flight each would read.
        with everyone_asked:
            assert everyone_asked.wait_for(lambda: entered[0] == THREADS, timeout=30)
        time.sleep(0.05)  # and let them reach the cache while this load is in flight
        reads.append(1)
        return checkpoint_bytes

    def ask(i: int):
        with everyone_asked:
            entered[0] += 1
            everyone_asked.notify_all()
        return cache.get("key", read, torch.device("cpu"))

    loaded = run_together(ask)
    assert len(reads) == 1 and cache.misses == 1 and len(cache) == 1
    assert all(item is loaded[0] for item in loaded)


def test_a_failed_load_raises_and_leaves_nothing_in_flight():
    flights: SingleFlight[int] = SingleFlight()

    def failing() -> int:
        raise ValueError("corrupt")

    with pytest.raises(ValueError, match="corrupt"):
        flights.do("k", failing)
    assert flights.do("k", lambda: 7) == 7  # the next call runs its own load


def test_replace_swaps_a_cached_entry_and_never_brings_back_an_evicted_one(checkpoint_bytes):
    cache = ModelCache(1)
    cpu = torch.device("cpu")
    first = cache.get("a", lambda: checkpoint_bytes, cpu)
    swapped = replace(first, class_names=["swapped"])
    assert cache.replace("a", swapped)
    assert cache.get("a", lambda: b"unused", cpu) is swapped
    cache.get("b", lambda: checkpoint_bytes, cpu)  # evicts "a" (capacity 1)
    assert not cache.replace("a", first)
    assert not cache.holds("a")
