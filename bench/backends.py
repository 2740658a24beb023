"""ONNX export and the two inference backends, per architecture: export time, max |logit diff|, and the forward
time of torch against onnxruntime at batch 1 and 32 (the predictor's own code paths, one process).

    .venv/bin/python bench/backends.py [--models bn_lenet resnet18] [--batches 1 32] [--repeats 20]
                                       [--threads 0] [--device cpu] [--json PATH]

Each model is built as a checkpoint would load it (the registry's default input size, 1 channel, 10 classes),
with BatchNorm statistics moved by a few training-mode passes so that eval-mode BatchNorm is not the identity;
it is exported and verified by `service.inference.export.export_onnx` (held-out inputs: the first 64
Fashion-MNIST test images when the data directory has them). Forward times are the batcher's `forward()`
(softmax included) on random inputs: median and [min-max] of `--repeats` timed passes after 3 warm-ups.
`--threads N` sets torch's and onnxruntime's intra-op threads (0: each library's default).
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from bench.common import RESULTS_DIR, Spread, machine_info, print_table, write_json
from models.catalog import get_model_info, list_models
from models.registry import build_model
from service.inference.backends import OrtModel, ort_session
from service.inference.batching import forward
from service.inference.export import export_onnx
from service.training.checkpoints import LoadedCheckpoint
from service.training.datasets import get_dataset_info

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def checkpoint_like(name: str) -> LoadedCheckpoint:
    """The architecture as a loaded Fashion-MNIST checkpoint, BatchNorm statistics moved off their init."""
    size = get_model_info(name).default_input_size
    model = build_model(name, in_channels=1, num_classes=10, input_size=size)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, size, size, generator=generator) * 1.5 + 0.3)
    info = get_dataset_info("fashion_mnist")
    return LoadedCheckpoint(
        model=model.eval(),
        architecture=name,
        in_channels=1,
        num_classes=10,
        input_size=size,
        dataset="fashion_mnist",
        class_names=info.class_names,
        mean=(0.0,),
        std=(1.0,),
        epoch=0,
        step=0,
        metrics=None,
        spec={"architecture": name},
        native_size=28,
    )


def time_forward(model: torch.nn.Module, batch: torch.Tensor, repeats: int) -> Spread:
    for _ in range(3):
        forward(model, batch)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(model, batch)
        samples.append((time.perf_counter() - start) * 1000)
    return Spread.of(samples)


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    loaded = checkpoint_like(name)
    made = export_onnx(loaded, job_id=0, checkpoint_sha256="-", data_dir=args.data_dir)
    device = torch.device(args.device)
    ort_model = OrtModel(ort_session(made.data, device, threads=args.threads))
    torch_model = loaded.model.to(device)
    result: dict[str, Any] = {
        "model": name,
        "export_seconds": made.seconds,
        "max_abs_diff": made.max_abs_diff,
        "onnx_bytes": len(made.data),
    }
    for n in args.batches:
        size = loaded.input_size
        batch = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(n))
        result[f"torch_ms_b{n}"] = time_forward(torch_model, batch, args.repeats).as_json()
        result[f"ort_ms_b{n}"] = time_forward(ort_model, batch, args.repeats).as_json()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[m.name for m in list_models()])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "backends.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [bench_model(name, args) for name in args.models]
    headers = ["model", "export s", "max |diff|"]
    for n in args.batches:
        headers += [f"torch ms b{n}", f"ort ms b{n}", f"ort/torch b{n}"]
    rows = []
    for r in results:
        row = [r["model"], f"{r['export_seconds']:.1f}", f"{r['max_abs_diff']:.1e}"]
        for n in args.batches:
            t, o = r[f"torch_ms_b{n}"], r[f"ort_ms_b{n}"]
            row += [Spread.of(t["samples"]).fmt(2), Spread.of(o["samples"]).fmt(2), f"{o['median'] / t['median']:.2f}"]
        rows.append(row)
    print_table(headers, rows)
    path = write_json(args.json, {"machine": machine_info(torch.device(args.device)), "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
