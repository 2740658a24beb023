"""Where a predict request's CPU goes, layer by layer, in two builds (issue 26: before and after), from py-spy.

    .venv/bin/python bench/layers.py [--build NAME=ROOT ...] [--seconds 10] [--rounds 2] [--rate 100] [--blocking]
                                     [--state-dir DIR] [--py-spy PATH] [--json PATH]

Each build (default: `before=../wt-old` if it exists, the code before issue 26's work at c987ef3, and
`after=` this checkout) is a source tree run with this virtualenv: its `convlab serve` is started with that tree
as the working directory (so `python -m service.cli` imports it). For each build, on a SQLite database of its own
in `--state-dir` (kept when given, so a second run skips training):
  1. `convlab serve --workers 1` trains BN-LeNet on real Fashion-MNIST (as bench/serve_names.py does);
  2. `convlab token create bench --scope predict` makes a predict token;
  3. the API alone (`--workers 0`, 1 torch thread, CONVLAB_AUTH=required, CONVLAB_PREDICT_RATE=0) is loaded by
     wrk at 32 connections with single-image multipart PNG predicts by job carrying the token, `--rounds` times:
     a run of `--seconds` without the profiler gives the process's CPU time per request (utime + stime from
     /proc, all threads, over the requests answered), then a run of `--seconds` under
     `py-spy record --format raw --full-filenames` (all threads; idle ones are not sampled) gives the shares.
Each sample's stack is given to a layer by its innermost frame that belongs to one (LAYERS, checked leaf first);
stacks with none of those go to the thread pool or event loop machinery they run in, else "other". A layer's
CPU per request is its share of the samples times the CPU per request (median of the unprofiled runs). The
1-minute load average is recorded with every run. A table goes to stdout, everything to JSON (default
bench/results/layers.json).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wrk
from bench.common import RESULTS_DIR, print_table, write_json
from bench.serve import DATA_DIR, JOBS, live_server, png, wait_for
from bench.serve_names import server_cpu_seconds, server_process
from service.training.datasets import load_dataset

REPO = Path(__file__).resolve().parent.parent
# (layer, pattern): a frame is "function (file:line)"; the first layer whose pattern matches the innermost
# frame that any matches wins. Specific modules come before the frameworks that call them.
LAYERS: list[tuple[str, str]] = [
    ("serialize", r"model_dump_json|^to_response |^to_prediction |^to_predictions |/json/|fastapi/encoders\.py"),
    ("serialize", r"^serialize_response |^_prepare_response_content |JSONResponse\.render"),
    ("metrics", r"prometheus_client/|service/telemetry/metrics\.py|service/inference/observer\.py"),
    ("auth", r"service/api/plumbing/security\.py|service/inference/shared_reads\.py|service/access/"),
    ("auth", r"fastapi/security/|service/api/routers/tokens\.py"),
    ("decode", r"PIL/|torchvision/|service/inference/(images|inputs|tensors)\.py|multipart/|formparsers\.py"),
    ("decode", r"service/api/plumbing/(predict_inputs|uploads)\.py|service/training/datasets\.py"),
    ("decode", r"^Predictor\.(_prepare|_batch|_cheap|_small|_load_and_batch) "),
    ("batch/forward", r"service/inference/(batching|backends)\.py|torch/|/models/[a-z_]+\.py|onnxruntime/"),
    ("middleware", r"service/api/plumbing/(observe|headers|limits|handlers)\.py|starlette/middleware/"),
    ("predict handler", r"service/api/routers/predict\.py|service/inference/(predictor|shedding|cache)\.py"),
    ("tracing check", r"fastapi/telemetry/|opentelemetry/"),
    ("routing", r"starlette/|fastapi/|service/api/plumbing/(deps|routes|lane)\.py"),  # the lane routes too
    ("server", r"uvicorn/|httptools/|h11/"),
]
# When no frame of a stack is in a layer: the machinery it runs in.
MACHINERY: list[tuple[str, str]] = [
    ("thread hand-offs", r"anyio/|concurrent/futures/|threading\.py|queue\.py"),
    ("server", r"asyncio/|uvloop/|selectors\.py"),
]
# A stack whose innermost frame is one of these is a thread waiting (py-spy does not always tell a thread blocked
# on a lock from one running): not counted.
IDLE = (
    r"^(Condition\.wait|Event\.wait|Semaphore\.acquire|Thread\.join|_wait_for_tstate_lock|_worker|\w*Selector\.select) "
)
ORDER = [
    "server", "routing", "middleware", "auth", "metrics", "decode", "predict handler", "batch/forward",
    "serialize", "tracing check", "thread hand-offs", "other",
]  # fmt: skip


def classify(frames: list[str]) -> str:
    """The layer of one stack (frames root first, as py-spy writes them)."""
    for rules in (LAYERS, MACHINERY):
        for frame in reversed(frames):
            for layer, pattern in rules:
                if re.search(pattern, frame):
                    return layer
    return "other"


def parse_raw(text: str) -> Counter[str]:
    """Samples per layer from py-spy's raw format (`thread (tid);frame;frame;... count` per line); waiting
    threads' samples under "idle" (not a layer)."""
    layers: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")[1:]
        layers["idle" if frames and re.search(IDLE, frames[-1]) else classify(frames)] += int(count)
    return layers


@contextmanager
def in_tree(root: Path) -> Iterator[None]:
    """Run `python -m service.cli` from `root` (the working directory comes first on its import path)."""
    old = Path.cwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old)


def train(root: Path, state_dir: Path) -> int:
    """The id of a succeeded BN-LeNet job in `state_dir` (trained now by `root`'s code if there is none)."""
    env = {"PYTHONPATH": str(root), "CONVLAB_AUTH": "off"}
    with in_tree(root), live_server(state_dir, workers=1, env=env) as url, httpx.Client(base_url=url) as client:
        done = [j for j in client.get("/jobs").json()["items"] if j["status"] == "succeeded"]
        job_id = done[0]["id"] if done else client.post("/jobs", json=JOBS["bn_lenet"]).json()["id"]
        job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=900)
    if job["status"] != "succeeded":
        raise RuntimeError(f"bn_lenet job ended {job['status']}: {job['error']}")
    return int(job_id)


def predict_token(root: Path, state_dir: Path) -> str:
    """A new token with the predict scope in `state_dir`'s database, made by `root`'s `convlab token create`."""
    name = f"bench-{int(time.time() * 1000)}"
    env = {**os.environ, "CONVLAB_STATE_DIR": str(state_dir), "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "service.cli", "token", "create", name, "--scope", "predict"]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip().splitlines()[-1]


def cpu_run(url: str, request: wrk.Request, seconds: float) -> dict[str, Any]:
    """wrk at 32 connections for `seconds`: rate, latency, the server's CPU µs per request, the load."""
    port = url.rsplit(":", 1)[1]
    cpu = server_cpu_seconds(port)
    got = wrk.run(url, request, connections=32, seconds=seconds)
    got["cpu_us_per_request"] = (server_cpu_seconds(port) - cpu) * 1e6 / max(1, got["requests"])
    got["load_average_1m"] = os.getloadavg()[0]
    return got


def profiled_run(url: str, request: wrk.Request, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """wrk at 32 connections for `--seconds` under py-spy: samples per layer, and the run's own figures."""
    pid = int(server_process(url.rsplit(":", 1)[1]).name)
    command = [args.py_spy, "record", "--pid", str(pid), "--rate", str(args.rate), "--format", "raw"]
    command += ["--full-filenames", "--duration", f"{args.seconds + 2:g}", "--output", str(out)]
    command += [] if args.blocking else ["--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)  # py-spy attaches
    got = cpu_run(url, request, args.seconds)
    _, err = spy.communicate(timeout=args.seconds + 60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode()[-2000:]}")
    got["samples"] = dict(parse_raw(out.read_text()))
    return got


def measure_build(root: Path, state_dir: Path, image: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """Train, make a token, then `--rounds` unprofiled and profiled wrk runs against `root`'s API process."""
    job_id = train(root, state_dir)
    token = predict_token(root, state_dir)
    body, content_type = wrk.multipart("file", "x.png", image, "image/png")
    headers = (("Content-Type", content_type), ("Authorization", f"Bearer {token}"))
    request = wrk.Request("POST", f"/jobs/{job_id}/predict", body, headers)
    env = {"PYTHONPATH": str(root), "CONVLAB_AUTH": "required", "CONVLAB_INFERENCE_THREADS": "1"}
    plain, profiled = [], []
    with in_tree(root), live_server(state_dir, workers=0, env=env) as url:
        refused = httpx.post(f"{url}{request.path}", content=body, headers={"Content-Type": content_type})
        if refused.status_code != 401:
            raise RuntimeError(f"auth is not required: a predict without a token got {refused.status_code}")
        wrk.run(url, request, connections=32, seconds=3)  # warm-up: load the model
        for index in range(args.rounds):
            plain.append(cpu_run(url, request, args.seconds))
            profiled.append(profiled_run(url, request, args, state_dir / f"pyspy-{index}.txt"))
            print(f"  round {index + 1}: {plain[-1]['rps']:,.0f} req/s, {plain[-1]['cpu_us_per_request']:.0f} us "
                  f"CPU/request (load {plain[-1]['load_average_1m']:.2f}); profiled {profiled[-1]['rps']:,.0f} req/s",
                  flush=True)  # fmt: skip
    return {"root": str(root), "job_id": job_id, "plain": plain, "profiled": profiled}


def layer_costs(build: dict[str, Any]) -> dict[str, float]:
    """µs of CPU per request in each layer: its share of all profiled samples times the unprofiled CPU/request."""
    samples: Counter[str] = Counter()
    for run in build["profiled"]:
        samples.update(run["samples"])
    total = sum(n for layer, n in samples.items() if layer != "idle") or 1
    cpu = statistics.median(r["cpu_us_per_request"] for r in build["plain"])
    return {layer: cpu * samples[layer] / total for layer in ORDER}


def report(builds: dict[str, dict[str, Any]]) -> None:
    costs = {name: layer_costs(b) for name, b in builds.items()}
    shares = {name: {k: v / (sum(c.values()) or 1) for k, v in c.items()} for name, c in costs.items()}
    rows = [
        [layer, *(f"{costs[n][layer]:,.0f} ({shares[n][layer]:.0%})" for n in builds)]
        for layer in ORDER
    ]  # fmt: skip
    rows.append(["total (CPU µs/request)", *(f"{sum(costs[n].values()):,.0f}" for n in builds)])
    for key, label in (("rps", "req/s (unprofiled)"), ("p99", "p99 ms (unprofiled)")):
        rows.append([label, *(f"{statistics.median(r[key] for r in b['plain']):,.1f}" for b in builds.values())])
    for key, label in (("rps", "req/s (profiled)"), ("cpu_us_per_request", "CPU µs/request (profiled)")):
        rows.append([label, *(f"{statistics.median(r[key] for r in b['profiled']):,.0f}" for b in builds.values())])
    counted = [sum(n for r in b["profiled"] for k, n in r["samples"].items() if k != "idle") for b in builds.values()]
    idle = [sum(r["samples"].get("idle", 0) for r in b["profiled"]) for b in builds.values()]
    rows.append(["samples counted (idle left out)", *(f"{c} ({i})" for c, i in zip(counted, idle, strict=True))])
    loads = [[r["load_average_1m"] for r in b["plain"] + b["profiled"]] for b in builds.values()]
    rows.append(["load average 1m", *(f"{min(x):.2f}-{max(x):.2f}" for x in loads)])
    print_table(["layer: CPU µs per request (share)", *builds], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_builds = ([f"before={REPO.parent / 'wt-old'}"] if (REPO.parent / "wt-old").is_dir() else []) + [
        f"after={REPO}"
    ]
    parser.add_argument("--build", action="append", help="NAME=ROOT, repeatable (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk run, profiled or not")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--blocking", action="store_true", help="pause the server for each sample (py-spy's default)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"))
    parser.add_argument("--state-dir", type=Path, help="one database per build under it (kept)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "layers.json")
    args = parser.parse_args()
    image = png(load_dataset("fashion_mnist", DATA_DIR, train_subset=1, test_subset=1).test.images[0, 0].numpy())
    builds: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="convlab-bench-") as tmp:
        for spec in args.build or default_builds:
            name, _, root = spec.partition("=")
            state_dir = (args.state_dir or Path(tmp)) / name
            state_dir.mkdir(parents=True, exist_ok=True)
            print(f"{name}: {root} (load average {os.getloadavg()[0]:.2f})", flush=True)
            builds[name] = measure_build(Path(root).resolve(), state_dir, image, args)
    report(builds)
    costs = {name: layer_costs(b) for name, b in builds.items()}
    print(f"wrote {write_json(args.json, {'builds': builds, 'layer_us_per_request': costs})}")


if __name__ == "__main__":
    main()
