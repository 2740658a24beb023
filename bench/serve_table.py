"""The serving table of docs/benchmarks-serve.md, in one run: convlab against TorchServe and the raw forward pass.

    .venv/bin/python bench/serve_table.py [--seconds 10] [--connections 32] [--api-workers 1 2]
                                          [--backend torch|onnxruntime|auto] [--no-torchserve] [--json PATH]

All on this machine over loopback, with wrk (bench/wrk.py) at `--connections` keep-alive connections:
  1. `convlab serve --workers 1` on a temporary SQLite database trains BN-LeNet (28x28) and ResNet-18 (96x96)
     on real Fashion-MNIST (a few hundred images: the weights do not change the cost of a forward pass).
  2. For each `--api-workers` count, the API alone (`--workers 0`) on that database: GET /version, then
     single-image predicts: BN-LeNet as a multipart PNG and as JSON base64, ResNet-18 as a multipart PNG.
     Each case has a short warm-up run, then a measured run of `--seconds`.
  3. TorchServe 0.12 (bench/torchserve.py) serving the same BN-LeNet checkpoint with the same batching (32
     images, 2 ms) and two workers: its answers for 32 real test images must equal convlab's, then GET /ping
     and POST /predictions/bn_lenet (the raw PNG as the body) under the same load.
  4. In this process, the raw forward pass of both checkpoints at batch 1 and 32 (images/s).
`--backend` (else CONVLAB_INFERENCE_BACKEND, when set) is passed to the convlab API processes, so the same
command gives a column per inference backend. The 1-minute load average is recorded before and after.
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import torchserve, wrk
from bench.common import RESULTS_DIR, machine_info, print_table, write_json
from bench.serve import DATA_DIR, JOBS, free_port, live_server, png, raw_forward, wait_for
from service.training.datasets import load_dataset

CHECK_IMAGES = 32


def train(state_dir: Path) -> dict[str, int]:
    """One succeeded job per model, trained by a real worker."""
    with live_server(state_dir, workers=1, env={}) as url, httpx.Client(base_url=url, timeout=60) as client:
        ids = {m: client.post("/jobs", json=JOBS[m]).json()["id"] for m in ("bn_lenet", "resnet18")}
        for model, job_id in ids.items():
            job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=900)
            if job["status"] != "succeeded":
                raise RuntimeError(f"{model} job ended {job['status']}: {job['error']}")
    return ids


def convlab_cases(ids: dict[str, int], image: bytes) -> dict[str, wrk.Request]:
    body, content_type = wrk.multipart("file", "x.png", image, "image/png")
    as_json = json.dumps({"images": [base64.b64encode(image).decode()]}).encode()
    return {
        "GET /version": wrk.Request("GET", "/version"),
        "bn_lenet multipart PNG": wrk.Request(
            "POST", f"/jobs/{ids['bn_lenet']}/predict", body, (("Content-Type", content_type),)
        ),
        "bn_lenet JSON base64": wrk.Request(
            "POST", f"/jobs/{ids['bn_lenet']}/predict", as_json, (("Content-Type", "application/json"),)
        ),
        "resnet18 multipart PNG": wrk.Request(
            "POST", f"/jobs/{ids['resnet18']}/predict", body, (("Content-Type", content_type),)
        ),
    }


def measure(url: str, cases: dict[str, wrk.Request], args: argparse.Namespace) -> dict[str, Any]:
    """Each case: a warm-up run, then the measured run."""
    results = {}
    for name, request in cases.items():
        wrk.run(url, request, connections=args.connections, seconds=2)
        results[name] = wrk.run(url, request, connections=args.connections, seconds=args.seconds)
        print(f"  {name}: {results[name]['rps']:,.0f} req/s", flush=True)
    return results


def answers(url: str, path: str, images: list[bytes], *, torchserve_style: bool) -> list[dict[str, Any]]:
    """Top-3 answers for each image, one request each (convlab: multipart; TorchServe: the raw PNG body)."""
    out = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for data in images:
            if torchserve_style:
                response = client.post(path, content=data, headers={"Content-Type": "image/png"})
                out.append(response.json())
            else:
                response = client.post(path, files={"file": ("x.png", data, "image/png")})
                out.append(response.json()["predictions"][0])
            response.raise_for_status()
    return out


def same_answers(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the ranked classes agree everywhere, and the largest probability difference."""
    ranked = all(
        [e["class_index"] for e in a["top_k"]] == [e["class_index"] for e in b["top_k"]]
        for a, b in zip(ours, theirs, strict=True)
    )
    gap = max(
        abs(e["probability"] - f["probability"])
        for a, b in zip(ours, theirs, strict=True)
        for e, f in zip(a["top_k"], b["top_k"], strict=True)
    )
    return {"images": len(ours), "same_top3": ranked, "max_probability_difference": gap}


def run_torchserve(work: Path, checkpoint: bytes, image: bytes, check: list[bytes], args: argparse.Namespace) -> Any:
    store = torchserve.archive(work, checkpoint, batch=32, delay_ms=2, workers=2)
    ports = {"port": free_port(), "management_port": free_port(), "metrics_port": free_port()}
    with torchserve.torchserve(work, store, **ports) as url:
        theirs = answers(url, f"/predictions/{torchserve.MODEL}", check, torchserve_style=True)
        cases = {
            "GET /ping": wrk.Request("GET", "/ping"),
            "bn_lenet raw PNG": wrk.Request(
                "POST", f"/predictions/{torchserve.MODEL}", image, (("Content-Type", "image/png"),)
            ),
        }
        return theirs, measure(url, cases, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration of each case")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--api-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backend", default=os.environ.get("CONVLAB_INFERENCE_BACKEND"))
    parser.add_argument("--no-torchserve", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per API process and raw pass")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "serve_table.json")
    args = parser.parse_args()
    if not wrk.available():
        sys.exit("wrk is not installed (apt-get install wrk)")
    torch.set_num_threads(args.threads)
    test = load_dataset("fashion_mnist", DATA_DIR, train_subset=1, test_subset=CHECK_IMAGES).test
    pngs = [png(im) for im in test.images[:, 0].numpy()]
    env = {"CONVLAB_INFERENCE_THREADS": str(args.threads)}
    if args.backend:
        env["CONVLAB_INFERENCE_BACKEND"] = args.backend
    load_before, started = os.getloadavg(), time.time()
    result: dict[str, Any] = {"backend": args.backend or "default", "convlab": {}}
    with tempfile.TemporaryDirectory(prefix="convlab-bench-") as tmp:
        ids = train(Path(tmp))
        for count in args.api_workers:
            print(f"convlab, {count} API process(es):", flush=True)
            with live_server(Path(tmp), workers=0, env=env, api_workers=count) as url:
                checkpoints = {m: httpx.get(f"{url}/jobs/{ids[m]}/checkpoints/1").content for m in ids}
                ours = answers(url, f"/jobs/{ids['bn_lenet']}/predict", pngs, torchserve_style=False)
                answers(url, f"/jobs/{ids['resnet18']}/predict", pngs[:4], torchserve_style=False)
                result["convlab"][str(count)] = measure(url, convlab_cases(ids, pngs[0]), args)
        if not args.no_torchserve and torchserve.available():
            print("TorchServe:", flush=True)
            theirs, result["torchserve"] = run_torchserve(
                Path(tmp) / "ts", checkpoints["bn_lenet"], pngs[0], pngs, args
            )
            result["answers_match"] = same_answers(ours, theirs)
        image = test.images[0, 0].numpy()
        result["raw_forward"] = {
            m: [raw_forward(checkpoints[m], image, b, args.seconds) for b in (1, 32)] for m in checkpoints
        }
    result["load_average_1m"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    result["machine"] = machine_info(torch.device("cpu"))
    result["wall_seconds"] = time.time() - started
    report(result, args)


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    rows = []
    for count, cases in result["convlab"].items():
        for name, r in cases.items():
            rows.append([f"convlab x{count}", name, *_cells(r)])
    for name, r in result.get("torchserve", {}).items():
        rows.append(["TorchServe x2 workers", name, *_cells(r)])
    print(f"\nwrk, {args.connections} connections, {args.seconds:g} s per case, backend {result['backend']}")
    print_table(["server", "request", "req/s", "p50 ms", "p99 ms", "non-2xx"], rows)
    raw = result["raw_forward"]
    print()
    print_table(
        ["model", "raw b1 img/s", "raw b32 img/s"],
        [[m, f"{r[0]['images_per_sec']:,.0f}", f"{r[1]['images_per_sec']:,.0f}"] for m, r in raw.items()],
    )
    print()
    for line in ratios(result):
        print(line)
    if "answers_match" in result:
        print(f"TorchServe's answers against convlab's: {result['answers_match']}")
    load = result["load_average_1m"]
    print(f"load average (1 min): {load['before']:.2f} before, {load['after']:.2f} after")
    print(f"wrote {write_json(args.json, result)} ({result['wall_seconds']:.0f} s)")


def _cells(r: dict[str, Any]) -> list[str]:
    return [f"{r['rps']:,.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}", str(r["non_2xx"] + r["socket_errors"])]


def ratios(result: dict[str, Any]) -> list[str]:
    """The issue's targets, as measured."""
    lines = []
    resnet_raw = result["raw_forward"]["resnet18"][1]["images_per_sec"]
    ts = result.get("torchserve", {}).get("bn_lenet raw PNG", {}).get("rps")
    for count, cases in result["convlab"].items():
        version = cases["GET /version"]["rps"]
        for name in ("bn_lenet multipart PNG", "bn_lenet JSON base64"):
            rps = cases[name]["rps"]
            against_ts = f", {rps / ts:.2f}x TorchServe (target >= 1.5)" if ts else ""
            lines.append(f"convlab x{count} {name}: {rps / version:.2f} of /version (target >= 0.5){against_ts}")
        resnet = cases["resnet18 multipart PNG"]["rps"]
        lines.append(f"convlab x{count} resnet18: {resnet / resnet_raw:.2f} of the raw b32 rate (target >= 0.80)")
    return lines


if __name__ == "__main__":
    main()
