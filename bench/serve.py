"""Serving benchmark: /predict latency and throughput against a live `convlab serve`, beside the raw forward pass.

    .venv/bin/python bench/serve.py [--seconds 4] [--concurrency 1 8 32 64] [--models bn_lenet resnet18]
                                    [--batching both|on|off] [--json PATH]

One run, all on loopback (127.0.0.1), bounded in time:
  1. Start `convlab serve --workers 1` on a temporary SQLite database and train one small job per model on
     real Fashion-MNIST (bn_lenet at 28x28, resnet18 at 96x96; a few hundred images: weights do not change
     the cost of a forward pass). While a longer bn_lenet job trains, time GET /jobs/{id} (p50/p95/p99).
  2. For each server configuration (dynamic batching off = CONVLAB_PREDICT_BATCH_MAX_SIZE=1, then on = the
     defaults) restart the API without workers on the same database and, for each model and concurrency
     level, run an async httpx closed loop of single-image PNG uploads for `--seconds`: requests/s and
     p50/p95/p99 latency. Every answer must be 200.
  3. In this process, the raw forward pass of the same checkpoints (load_checkpoint + preprocess +
     model under inference_mode) at batch 1 and 32: images/s.
`--threads` (default 1) sets torch's intra-op threads for the raw forward and the API process alike: on a
2-core machine shared with other work, two spinning OpenMP threads per forward pass are up to 25x slower.
A table goes to stdout and everything to JSON (default bench/results/serve.json).
"""

import argparse
import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, machine_info, print_table, write_json
from service.training.checkpoints import load_checkpoint
from service.training.datasets import load_dataset, preprocess

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CONVLAB_DATA_DIR", REPO.parent / "shared" / "datasets"))
JOBS = {
    "bn_lenet": {"architecture": "bn_lenet", "epochs": 1, "train_subset": 2048, "test_subset": 256},
    "resnet18": {"architecture": "resnet18", "epochs": 1, "train_subset": 256, "test_subset": 64, "batch_size": 64},
}
BACKGROUND_JOB = {"architecture": "bn_lenet", "epochs": 3, "seed": 1}


def percentiles(latencies: list[float]) -> dict[str, float]:
    ms = np.array(latencies) * 1000
    return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(state_dir: Path, *, workers: int, env: dict[str, str], api_workers: int = 1) -> Iterator[str]:
    """A `convlab serve` (`api_workers` API processes) on a free loopback port; stopped (SIGTERM) on exit."""
    port = free_port()
    full_env = {
        **os.environ,
        "CONVLAB_STATE_DIR": str(state_dir),
        "CONVLAB_DATA_DIR": str(DATA_DIR),
        "CONVLAB_POLL_SECONDS": "0.2",
        "CONVLAB_PREDICT_RATE": "0",  # a load generator is one caller: measure the service, not its rate limit
        **env,
    }
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        *(["--api-workers", str(api_workers)] if api_workers > 1 else []),
    ]
    log = (state_dir / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"convlab serve did not start; see {log.name}")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=90)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the server and its workers
        process.wait()
        log.close()


def wait_for(client: httpx.Client, job_id: int, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not reach {statuses} in {timeout:.0f}s")


async def closed_loop(url: str, path: str, *, concurrency: int, seconds: float, files: bytes | None) -> dict[str, Any]:
    """`concurrency` clients sending back-to-back requests for `seconds`: rps and latency percentiles."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        stop_at = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                if files is None:
                    response = await client.get(path)
                else:
                    response = await client.post(path, files={"file": ("x.png", files, "image/png")})
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        **percentiles(latencies),
    }


def raw_forward(checkpoint: bytes, image: np.ndarray, batch: int, seconds: float) -> dict[str, Any]:
    """Images/s of load-free inference: preprocess + forward under inference_mode, as the server does."""
    loaded = load_checkpoint(checkpoint)
    images = torch.from_numpy(np.repeat(image[None, None], batch, axis=0))
    with torch.inference_mode():
        loaded.model(preprocess(images, size=loaded.input_size, mean=loaded.mean, std=loaded.std))  # warm-up
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            x = preprocess(images, size=loaded.input_size, mean=loaded.mean, std=loaded.std)
            torch.softmax(loaded.model(x), dim=1)
            count += batch
        elapsed = time.perf_counter() - started
    return {"batch": batch, "images_per_sec": count / elapsed, "ms_per_batch": 1000 * elapsed * batch / count}


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def train_and_probe(state_dir: Path, models: list[str], seconds: float) -> tuple[dict[str, int], dict[str, Any]]:
    """Train one job per model, then time GET /jobs/{id} while a worker trains a longer job."""
    with live_server(state_dir, workers=1, env={}) as url, httpx.Client(base_url=url, timeout=60) as client:
        ids = {m: client.post("/jobs", json=JOBS[m]).json()["id"] for m in models}
        for model, job_id in ids.items():
            job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=900)
            if job["status"] != "succeeded":
                raise RuntimeError(f"{model} job ended {job['status']}: {job['error']}")
        background = client.post("/jobs", json=BACKGROUND_JOB).json()["id"]
        wait_for(client, background, {"running"}, timeout=120)
        time.sleep(2)  # past data loading: the worker is in its training loop
        probe = {
            c: asyncio.run(closed_loop(url, f"/jobs/{background}", concurrency=c, seconds=seconds, files=None))
            for c in (1, 8)
        }
        still_running = client.get(f"/jobs/{background}").json()["status"] == "running"
        client.post(f"/jobs/{background}/cancel")
    return ids, {"while_training": still_running, "levels": list(probe.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each load level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--models", nargs="+", default=["bn_lenet", "resnet18"], choices=sorted(JOBS))
    parser.add_argument("--batching", choices=["both", "on", "off"], default="both")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "serve.json")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for the raw forward and the API process (0: torch's default)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    test = load_dataset("fashion_mnist", DATA_DIR, train_subset=1, test_subset=1).test
    image = test.images[0, 0].numpy()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="convlab-bench-") as tmp:
        state_dir = Path(tmp)
        ids, job_probe = train_and_probe(state_dir, args.models, args.seconds)
        threads = {"CONVLAB_INFERENCE_THREADS": str(args.threads)}
        configs = {"off": {**threads, "CONVLAB_PREDICT_BATCH_MAX_SIZE": "1"}, "on": threads}
        chosen = ["off", "on"] if args.batching == "both" else [args.batching]
        serving: dict[str, Any] = {}
        checkpoints: dict[str, bytes] = {}
        for name in chosen:
            with live_server(state_dir, workers=0, env=configs[name]) as url:
                with httpx.Client(base_url=url) as client:
                    checkpoints = {m: client.get(f"/jobs/{ids[m]}/checkpoints/1").content for m in args.models}
                    for m in args.models:  # load into the model cache before timing
                        client.post(f"/jobs/{ids[m]}/predict", files={"file": ("x.png", png(image), "image/png")})
                serving[name] = {
                    m: [
                        asyncio.run(
                            closed_loop(
                                url, f"/jobs/{ids[m]}/predict", concurrency=c, seconds=args.seconds, files=png(image)
                            )
                        )
                        for c in args.concurrency
                    ]
                    for m in args.models
                }
        raw = {m: [raw_forward(checkpoints[m], image, b, args.seconds) for b in (1, 32)] for m in args.models}
    report(args, serving, raw, job_probe, time.time() - started)


def report(
    args: argparse.Namespace, serving: dict[str, Any], raw: dict[str, Any], probe: dict[str, Any], wall: float
) -> None:
    rows = []
    for config, per_model in serving.items():
        for model, levels in per_model.items():
            raw32 = raw[model][1]["images_per_sec"]
            for level in levels:
                rows.append(
                    [
                        model,
                        f"batching {config}",
                        str(level["concurrency"]),
                        f"{level['rps']:,.0f}",
                        f"{level['p50']:.1f}",
                        f"{level['p95']:.1f}",
                        f"{level['p99']:.1f}",
                        f"{level['rps'] / raw32:.2f}",
                        str(level["errors"]),
                    ]
                )
    print_table(["model", "server", "conc.", "req/s", "p50 ms", "p95 ms", "p99 ms", "/raw b32", "errors"], rows)
    print()
    print_table(
        ["model", "raw forward b1 img/s", "raw forward b32 img/s"],
        [[m, f"{r[0]['images_per_sec']:,.0f}", f"{r[1]['images_per_sec']:,.0f}"] for m, r in raw.items()],
    )
    print()
    print_table(
        ["GET /jobs/{id} while training", "req/s", "p50 ms", "p95 ms", "p99 ms"],
        [
            [
                f"concurrency {lv['concurrency']}",
                f"{lv['rps']:,.0f}",
                f"{lv['p50']:.1f}",
                f"{lv['p95']:.1f}",
                f"{lv['p99']:.1f}",
            ]
            for lv in probe["levels"]
        ],
    )
    payload = {
        "machine": machine_info(torch.device("cpu")),
        "seconds_per_level": args.seconds,
        "wall_seconds": wall,
        "predict": serving,
        "raw_forward": raw,
        "get_job_while_training": probe,
    }
    print(f"\nwrote {write_json(args.json, payload)} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
