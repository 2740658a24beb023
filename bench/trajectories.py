"""Latency of POST /trajectories against the book's pure-Python loop, for 20, 1,000 and 10,000 steps.

    .venv/bin/python bench/trajectories.py [--repeats 9] [--json bench/results/trajectories.json]

For each step count and optimizer (gd lr 0.1 and momentum lr 0.1, β 0.5 on f = x1² + 2·x2² from (−5, −2),
the book's 2-D example) it times, alternating in one run:
  - book:      the seed's `train_2d` loop with hand-written gradients (records x only);
  - core:      service.optlab.run_trajectory on the compiled backend (f, ∇f, ‖∇f‖ at every point);
  - http:      POST /trajectories through the real app (FastAPI TestClient, JSON in and out), compiled;
  - http_autograd: the same request with "backend": "autograd" (torch.autograd every step; the naive way).
Medians with min–max over the repetitions; a table on stdout and everything in JSON.
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from fastapi.testclient import TestClient

from service.config import AccessSettings, AuthMode, Settings
from service.main import create_app
from service.optlab.functions import resolve_objective
from service.optlab.requests import OptimizerConfig
from service.optlab.trajectories import run_trajectory

STEPS = (20, 1_000, 10_000)
# In process there is no bound address: say so, and lift the per-caller rate and the time budget being measured.
OPEN = Settings(access=AccessSettings(auth=AuthMode.off, lab_rate=0, lab_max_seconds=600))
OPTIMIZERS = {"gd": {"name": "gd", "lr": 0.1}, "momentum": {"name": "momentum", "lr": 0.1, "momentum": 0.5}}


def book_gd(steps: int) -> list[tuple[float, float]]:
    """The seed's gd_2d through train_2d: f = x1² + 2·x2², ∇f = (2x1, 4x2)."""
    eta = 0.1

    def gd_2d(x1: float, x2: float, s1: float, s2: float) -> tuple[float, float, float, float]:
        return (x1 - eta * 2 * x1, x2 - eta * 4 * x2, 0, 0)

    return train_2d(gd_2d, steps)


def book_momentum(steps: int) -> list[tuple[float, float]]:
    """The seed's momentum_2d (v ← βv + g; x ← x − ηv) through train_2d."""
    eta, beta = 0.1, 0.5

    def momentum_2d(x1: float, x2: float, v1: float, v2: float) -> tuple[float, float, float, float]:
        v1 = beta * v1 + 2 * x1
        v2 = beta * v2 + 4 * x2
        return x1 - eta * v1, x2 - eta * v2, v1, v2

    return train_2d(momentum_2d, steps)


def train_2d(trainer: Callable[..., tuple[float, float, float, float]], steps: int) -> list[tuple[float, float]]:
    """The seed's train_2d, minus the print."""
    x1, x2, s1, s2 = -5.0, -2.0, 0.0, 0.0
    results = [(x1, x2)]
    for _ in range(steps):
        x1, x2, s1, s2 = trainer(x1, x2, s1, s2)
        results.append((x1, x2))
    return results


BOOK = {"gd": book_gd, "momentum": book_momentum}


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (CPU time is the steadier figure on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(client: TestClient, repeats: int) -> list[dict[str, object]]:
    objective = resolve_objective("x1**2 + 2*x2**2", 2)
    rows = []
    for steps in STEPS:
        for name, optimizer in OPTIMIZERS.items():
            body = {"function": "x1**2 + 2*x2**2", "x0": [-5, -2], "steps": steps, "optimizer": optimizer}
            slow_body = {**body, "backend": "autograd"}
            config = OptimizerConfig.model_validate(optimizer)
            cases: dict[str, Callable[[], object]] = {
                "book": partial(BOOK[name], steps),
                "core": partial(run_trajectory, objective, config, [-5.0, -2.0], steps),
                "http": partial(_post, client, body),
                "http_autograd": partial(_post, client, slow_body),
            }
            agree = _check_agreement(client, body, BOOK[name](steps))
            samples: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
            for _ in range(repeats):  # alternate the cases so drifting load hits all of them alike
                for case, fn in cases.items():
                    if case == "http_autograd" and steps > 1_000 and len(samples[case]) >= 3:
                        continue  # seconds per call: three samples are enough
                    samples[case].append(timed(fn))
            rows.append({"steps": steps, "optimizer": name, "agrees_with_book": agree, **_summaries(samples)})
    return rows


def _post(client: TestClient, body: dict[str, object]) -> int:
    response = client.post("/trajectories", json=body)
    assert response.status_code == 200, response.text
    return len(response.content)


def _check_agreement(client: TestClient, body: dict[str, object], book: list[tuple[float, float]]) -> bool:
    points = client.post("/trajectories", json=body).json()["points"]
    return all(abs(p["x"][0] - b[0]) < 1e-9 and abs(p["x"][1] - b[1]) < 1e-9 for p, b in zip(points, book, strict=True))


def _summaries(samples: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    out = {}
    for case, pairs in samples.items():
        wall, cpu = [w * 1e3 for w, _ in pairs], [c * 1e3 for _, c in pairs]
        out[case] = {
            "median_ms": statistics.median(wall),
            "min_ms": min(wall),
            "max_ms": max(wall),
            "cpu_median_ms": statistics.median(cpu),
            "cpu_min_ms": min(cpu),
            "cpu_max_ms": max(cpu),
            "n": len(pairs),
        }
    return out


def print_table(rows: list[dict[str, object]], prefix: str = "") -> None:
    """Medians (min-max) per case, in wall-clock (prefix "") or CPU (prefix "cpu_") milliseconds."""
    cases = ("book", "core", "http", "http_autograd")
    print(f"{prefix or 'wall_'}ms")
    print(f"{'steps':>6} {'optimizer':<9} " + " ".join(f"{c:>24}" for c in cases) + "  http/book  autograd/http")
    for row in rows:
        stats: dict[str, dict[str, float]] = {case: row[case] for case in cases}  # type: ignore[misc]
        cells = []
        for case in cases:
            median, low, high = (stats[case][prefix + key] for key in ("median_ms", "min_ms", "max_ms"))
            cells.append(f"{median:9.3f} ({low:.2f}-{high:.2f})".rjust(24))
        http, book, slow = (stats[c][prefix + "median_ms"] for c in ("http", "book", "http_autograd"))
        ratios = f"  {http / book:8.0f}x  {slow / http:11.1f}x"
        print(f"{row['steps']:>6} {row['optimizer']:<9} " + " ".join(cells) + ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, default=Path("bench/results/trajectories.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with (
        tempfile.TemporaryDirectory() as state,
        TestClient(create_app(OPEN.model_copy(update={"state_dir": Path(state)}))) as client,
    ):
        _post(client, {"function": "bowl", "steps": 10, "optimizer": {"name": "gd"}})  # warm-up
        rows = measure(client, args.repeats)
    print_table(rows)
    print_table(rows, "cpu_")
    machine = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform()}
    machine["cpu"] = platform.processor() or platform.machine()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "repeats": args.repeats, "rows": rows}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
