"""Training throughput: convlab's loop against a faithful copy of the seed's loop, same model, data and batch.

    .venv/bin/python bench/train.py [--models lenet bn_lenet resnet18 densenet] [--reps 3]
                                    [--batches 20 --big-batches 2] [--device auto] [--compile] [--json PATH]

For each model, in one process, alternating A/B for `--reps` repetitions (the order flips every rep):
  - seed:    d2l's train_ch6 inner loop: torchvision FashionMNIST with per-image transforms (Resize when the
             model wants 96x96, then ToTensor), DataLoader(batch 256, shuffle, 4 workers), float32 NCHW, SGD,
             cross-entropy, and the book's per-batch accuracy/metric bookkeeping. Timed after a warm-up batch,
             so worker start-up is NOT charged to it.
  - convlab: service.training.engine.train_epoch on a run built by the engine (uint8 data on the device,
             batch gather + transform as one tensor op; on CUDA also channels_last, bf16 autocast,
             cudnn.benchmark and, with --compile, torch.compile). Timed over whole epochs of `batches`
             batches after one warm-up epoch.
Images/s are medians with min-max. On CUDA it also measures a bf16 matmul peak in the same run and reports model
FLOPs utilisation (MFU) of each loop against it. A table goes to stdout, everything to JSON.
"""

import argparse
import dataclasses
import gzip
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, Spread, machine_info, print_table, write_json
from models.catalog import get_model_info
from service.jobspec.spec import JobRequest
from service.records import EpochRecord
from service.training.datasets import load_dataset
from service.training.engine import train_epoch
from service.training.records import Callbacks
from service.training.run import Run, build_run, init_model
from service.training.runtime import make_runtime, resolve_device

BATCH = 256
MODELS = ["lenet", "bn_lenet", "resnet18", "densenet"]
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def torchvision_root(data_dir: Path, scratch: Path) -> Path:
    """torchvision's FashionMNIST wants un-gzipped raw files; extract the shared .gz copies once into scratch."""
    raw = scratch / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in (data_dir / "FashionMNIST" / "raw").glob("*.gz"):
        target = raw / gz.name.removesuffix(".gz")
        if not target.exists():
            with gzip.open(gz) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return scratch


def seed_loader(root: Path, size: int) -> DataLoader[Any]:
    """d2l.load_data_fashion_mnist(256, resize=size or None): per-image PIL Resize + ToTensor, 4 workers."""
    trans: list[Any] = [transforms.ToTensor()]
    if size != 28:
        trans.insert(0, transforms.Resize(size))
    dataset = datasets.FashionMNIST(root=str(root), train=True, transform=transforms.Compose(trans))
    return DataLoader(dataset, BATCH, shuffle=True, num_workers=4)


def seed_rep(net: nn.Module, loader: DataLoader[Any], device: torch.device, batches: int, lr: float) -> float:
    """Images/s of d2l's train_ch6 inner loop over `batches` batches, after one untimed warm-up batch."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    metric = [0.0, 0.0, 0.0]
    net.train()
    seen, started = 0, 0.0
    for i, (X, y) in enumerate(loader):
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, seen = time.perf_counter(), 0
        optimizer.zero_grad()
        X, y = X.to(device), y.to(device)
        y_hat = net(X)
        l = loss(y_hat, y)  # noqa: E741 (the seed's name)
        l.backward()
        optimizer.step()
        with torch.no_grad():  # d2l's Accumulator.add(l * n, accuracy(y_hat, y), n): host syncs every batch
            correct = float((y_hat.argmax(axis=1).type(y.dtype) == y).type(y.dtype).sum())
            metric = [metric[0] + float(l * X.shape[0]), metric[1] + correct, metric[2] + X.shape[0]]
        seen += X.shape[0]
        if i == batches:
            break
    return seen / (time.perf_counter() - started)


def convlab_run(
    model: str, data_dir: Path, device: torch.device, batches: int, compile: bool, nchw: bool = False
) -> Run:
    """A run built by the engine; `nchw` forces the plain layout (the engine before its CPU channels_last fix)."""
    spec = JobRequest(
        architecture=model, train_subset=batches * BATCH, test_subset=BATCH, compile=compile, epochs=10_000
    ).resolve()
    splits = load_dataset("fashion_mnist", data_dir, train_subset=spec.train_subset, test_subset=spec.test_subset)
    runtime = make_runtime(device, compile=compile, architecture=model)
    if nchw:
        runtime = dataclasses.replace(runtime, channels_last=False)
    return build_run(spec, splits, runtime, Callbacks())


def convlab_rep(run: Run) -> float:
    """Images/s of one whole epoch of the engine's loop."""
    if run.runtime.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    halt = train_epoch(run)
    elapsed = time.perf_counter() - started  # train_epoch ends with a host sync of the losses
    if halt is not None:
        raise RuntimeError(halt)
    run.state.start_epoch(EpochRecord(run.state.epoch + 1, 0, 0, 0, 0, 0, 0, 0))
    return len(run.train) / elapsed


def train_flops_per_image(model: str, size: int, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by torch's FlopCounterMode."""
    spec = JobRequest(architecture=model).resolve()
    net = init_model(spec, in_channels=1, num_classes=10, input_size=size).to(device)
    x = torch.randn(8, 1, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(net(x), torch.zeros(8, dtype=torch.long, device=device)).backward()
    return counter.get_total_flops() / 8


def bf16_matmul_peak(device: torch.device, n: int = 8192, iters: int = 50) -> float:
    """Measured bf16 matmul FLOP/s on this GPU (the MFU denominator)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - started)


def bench_model(model: str, args: argparse.Namespace, root: Path, device: torch.device) -> dict[str, Any]:
    size = get_model_info(model).default_input_size
    batches = args.batches if size == 28 else args.big_batches
    run = convlab_run(model, args.data_dir, device, batches, args.compile)
    spec = JobRequest(architecture=model).resolve()
    seed_net = init_model(spec, in_channels=1, num_classes=10, input_size=size).to(device)
    loader = seed_loader(root, size)
    convlab_rep(run)  # warm-up epoch (and compilation, with --compile)
    loops: dict[str, Callable[[], float]] = {
        "seed": lambda: seed_rep(seed_net, loader, device, batches, run.plan.lr),
        "convlab": lambda: convlab_rep(run),
    }
    if args.before and run.runtime.channels_last and device.type != "cuda":
        before = convlab_run(model, args.data_dir, device, batches, args.compile, nchw=True)
        convlab_rep(before)
        loops["convlab_nchw"] = lambda: convlab_rep(before)
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for rep in range(args.reps):
        for name in list(loops) if rep % 2 == 0 else list(reversed(loops)):
            samples[name].append(loops[name]())
            print(f"  {model} rep {rep + 1} {name}: {samples[name][-1]:,.0f} img/s", flush=True)
    seed, ours = Spread.of(samples["seed"]), Spread.of(samples["convlab"])
    # Each rep's two loops ran back to back: their ratio is robust to load that drifts between reps.
    paired = Spread.of([c / s for c, s in zip(samples["convlab"], samples["seed"], strict=True)])
    result: dict[str, Any] = {
        "model": model,
        "input_size": size,
        "batches_per_rep": batches,
        **{name: Spread.of(values).as_json() for name, values in samples.items()},
        "speedup": ours.median / seed.median,
        "paired_speedup": paired.as_json(),
        "train_flops_per_image": train_flops_per_image(model, size, device),
    }
    if args.peak_flops:
        result["mfu_seed"] = seed.median * result["train_flops_per_image"] / args.peak_flops
        result["mfu_convlab"] = ours.median * result["train_flops_per_image"] / args.peak_flops
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per loop (median reported)")
    parser.add_argument("--batches", type=int, default=None, help="batches per rep at 28x28 (CPU 20, GPU 100)")
    parser.add_argument("--big-batches", type=int, default=None, help="batches per rep at 96x96 (CPU 2, GPU 40)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the convlab model")
    parser.add_argument("--before", action="store_true", help="also time the engine without CPU channels_last")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    args.batches = args.batches or (100 if gpu else 20)
    args.big_batches = args.big_batches or (40 if gpu else 2)
    args.peak_flops = bf16_matmul_peak(device) if gpu else None
    machine = machine_info(device)
    print(f"machine: {machine}\nbf16 matmul peak: {args.peak_flops}")
    with tempfile.TemporaryDirectory() as scratch:
        root = torchvision_root(args.data_dir, Path(scratch))
        results = [bench_model(m, args, root, device) for m in args.models]
    headers = ["model", "size", "seed img/s", "convlab img/s", "speedup", "paired speedup", "NCHW img/s"]
    headers += ["MFU seed", "MFU convlab"] if gpu else []
    rows = []
    for r in results:
        paired = r["paired_speedup"]
        before = r.get("convlab_nchw")
        row = [
            r["model"],
            str(r["input_size"]),
            Spread.of(r["seed"]["samples"]).fmt(),
            Spread.of(r["convlab"]["samples"]).fmt(),
            f"{r['speedup']:.2f}x",
            f"{paired['median']:.2f}x [{paired['min']:.2f}-{paired['max']:.2f}]",
            Spread.of(before["samples"]).fmt() if before else "-",
        ]
        if gpu:
            row += [f"{r['mfu_seed']:.1%}", f"{r['mfu_convlab']:.1%}"]
        rows.append(row)
    print_table(headers, rows)
    payload = {
        "machine": machine,
        "bf16_peak_flops": args.peak_flops,
        "compile": args.compile,
        "batch": BATCH,
        "results": results,
    }
    path = write_json(args.json or RESULTS_DIR / f"train-{device.type}.json", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
