"""Predict by name against predict by job (issue 25's target: within 10%), and GET /version against a bare
FastAPI route on the same server (issue 26's target: at least half its rate), in one run.

    .venv/bin/python bench/serve_names.py [--seconds 6] [--rounds 3] [--connections 32] [--state-dir DIR]

A `convlab serve --workers 1` on a SQLite database in `--state-dir` (a temporary one by default; a given one is
kept, so a second run skips training) trains BN-LeNet on real Fashion-MNIST and registers its checkpoint as
model `bench`, alias prod. Then the API alone (`--workers 0`) serves `--rounds` interleaved passes of wrk over
the same single-image multipart PNG by job and by name, and GET /version, beside bench/serve_bare.py's bare
FastAPI app (one process, uvicorn) answering the same JSON. The 1-minute load average is recorded
with every sample, and the server process's CPU time per request (robust to the machine's other load); the
table shows medians and the by-name ratios per round.
"""

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wrk
from bench.common import RESULTS_DIR, print_table, write_json
from bench.serve import DATA_DIR, JOBS, live_server, png, wait_for
from bench.serve_bare import bare_server
from bench.serve_table import MODEL, register
from service.training.datasets import load_dataset


def trained_job(state_dir: Path) -> int:
    """The id of a succeeded BN-LeNet job in `state_dir`, trained now if there is none."""
    with live_server(state_dir, workers=1, env={}) as url, httpx.Client(base_url=url, timeout=60) as client:
        done = [j for j in client.get("/jobs").json()["items"] if j["status"] == "succeeded"]
        job_id = done[0]["id"] if done else client.post("/jobs", json=JOBS["bn_lenet"]).json()["id"]
        job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=900)
        if job["status"] != "succeeded":
            raise RuntimeError(f"bn_lenet job ended {job['status']}: {job['error']}")
        register(url, job_id)
    return int(job_id)


@contextmanager
def trained_state(state_dir: Path | None) -> Iterator[tuple[Path, int, bytes]]:
    """A state folder (`state_dir`, else a temporary one) holding a trained BN-LeNet job, that job's id, and a
    real Fashion-MNIST test image as PNG bytes."""
    image = png(load_dataset("fashion_mnist", DATA_DIR, train_subset=1, test_subset=1).test.images[0, 0].numpy())
    with tempfile.TemporaryDirectory(prefix="convlab-bench-") as tmp:
        folder = state_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder, trained_job(folder), image


def cases(job_id: int, image: bytes) -> dict[str, wrk.Request]:
    body, content_type = wrk.multipart("file", "x.png", image, "image/png")
    header = (("Content-Type", content_type),)
    return {
        "by job": wrk.Request("POST", f"/jobs/{job_id}/predict", body, header),
        "by name": wrk.Request("POST", f"/models/{MODEL}/predict", body, header),
        "GET /version": wrk.Request("GET", "/version"),
    }


def server_process(port: str) -> Path:
    """The /proc entry of the server on `port`: `convlab serve` (one API process: uvicorn runs in it) or an app of
    bench/serve_bare.py."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = b"service.cli" in command or any(arg.startswith(b"bench.serve_bare:") for arg in command)
        if ours and port.encode() in command:
            return entry
    raise RuntimeError(f"no convlab serve or bench/serve_bare.py process on port {port}")


def server_cpu_seconds(port: str) -> float:
    """User plus system CPU time of the server on `port` (`server_process`), all its threads."""
    fields = (server_process(port) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(cases: dict[str, tuple[str, wrk.Request]], args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """wrk over each (url, request) in turn, `--rounds` times: rate, latency, server CPU per request, the load."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for url, request in cases.values():
        wrk.run(url, request, connections=args.connections, seconds=2)  # warm-up: load the model
    for index in range(args.rounds):
        for name, (url, request) in cases.items():
            port = url.rsplit(":", 1)[1]
            cpu = server_cpu_seconds(port)
            got = wrk.run(url, request, connections=args.connections, seconds=args.seconds)
            got["cpu_us_per_request"] = (server_cpu_seconds(port) - cpu) * 1e6 / max(1, got["requests"])
            got["load_average_1m"] = os.getloadavg()[0]
            samples[name].append(got)
            print(f"round {index + 1} {name}: {got['rps']:,.0f} req/s, {got['cpu_us_per_request']:.0f} us CPU each")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "serve_names.json")
    args = parser.parse_args()
    with trained_state(args.state_dir) as (state_dir, job_id, image):
        env = {"CONVLAB_INFERENCE_THREADS": "1"}
        with live_server(state_dir, workers=0, env=env) as url, bare_server() as bare:
            everything = {name: (url, request) for name, request in cases(job_id, image).items()}
            everything["bare FastAPI GET /version"] = (bare, wrk.Request("GET", "/version"))
            samples = measure(everything, args)
    rows = []
    for name, runs in samples.items():
        keys = ("rps", "p50", "p99", "cpu_us_per_request", "load_average_1m")
        rps, p50, p99, cpu, load = (statistics.median(r[k] for r in runs) for k in keys)
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in runs)
        rows.append([name, f"{rps:,.0f}", f"{p50:.1f}", f"{p99:.1f}", f"{cpu:.0f}", f"{load:.2f}", str(errors)])
    print_table(["request", "req/s", "p50 ms", "p99 ms", "CPU us/req", "load 1m", "errors"], rows)
    ratios = [a["rps"] / b["rps"] for a, b in zip(samples["by name"], samples["by job"], strict=True)]
    print(f"by name / by job req/s per round: {', '.join(f'{r:.2f}' for r in ratios)} (target >= 0.90)")
    costs = [
        b["cpu_us_per_request"] / a["cpu_us_per_request"]
        for a, b in zip(samples["by name"], samples["by job"], strict=True)
    ]
    print(f"by job / by name CPU per request, per round: {', '.join(f'{r:.2f}' for r in costs)}")
    bare = [
        a["rps"] / b["rps"] for a, b in zip(samples["GET /version"], samples["bare FastAPI GET /version"], strict=True)
    ]
    print(f"GET /version / bare FastAPI req/s per round: {', '.join(f'{r:.2f}' for r in bare)} (target >= 0.5)")
    print(f"wrote {write_json(args.json, {'samples': samples, 'ratios': ratios, 'cpu_ratios': costs})}")


if __name__ == "__main__":
    main()
