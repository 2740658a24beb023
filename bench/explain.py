"""Explain vs predict: seconds for 32 real Fashion-MNIST test images, per architecture and method.

Measures the work behind one request of 32 images, in process: predict's forward pass (service/inference/
batching.py `forward`, inference mode) against `explain_batch` (service/inference/explainer.py: a private copy of
the model, a forward pass for the prediction, then the attribution). The HTTP path around both is the same (the
same body, decoding and thread hop), so it is left out. Weights are freshly initialized (Xavier, as a job starts):
the cost does not depend on what was learned. Default input sizes: 28 for the LeNets, 96 for ResNet-18 and
DenseNet; integrated gradients with the default 32 steps.

    python bench/explain.py [--device cpu|cuda] [--repeats 3] [--architectures lenet,resnet18] [--out FILE]
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, Spread, machine_info, print_table, write_json
from models.catalog import architecture_names, get_model_info
from models.registry import build_model
from service.config import Settings
from service.inference.attribution import METHODS
from service.inference.batching import forward
from service.inference.explainer import ExplainOptions, explain_batch
from service.training.checkpoints import LoadedCheckpoint
from service.training.datasets import get_dataset_info, load_dataset, preprocess

IMAGES = 32


def loaded_checkpoint(name: str, device: torch.device) -> LoadedCheckpoint:
    """A freshly initialized model of `name` for Fashion-MNIST, as the model cache would hold it."""
    info, size = get_dataset_info("fashion_mnist"), get_model_info(name).default_input_size
    torch.manual_seed(0)
    model = build_model(name, in_channels=1, num_classes=10, input_size=size).to(device).eval()
    return LoadedCheckpoint(
        model, name, 1, 10, size, "fashion_mnist", info.class_names, info.mean, info.std, 0, 0, None, {}
    )


def seconds(run: object, repeats: int) -> Spread:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return Spread.of(samples)


def measure(name: str, images: torch.Tensor, device: torch.device, repeats: int) -> dict[str, Spread]:
    loaded = loaded_checkpoint(name, device)
    batch = preprocess(images, size=loaded.input_size, mean=loaded.mean, std=loaded.std)
    forward(loaded.model, batch)  # warm-up
    times = {"predict": seconds(lambda: forward(loaded.model, batch), repeats)}
    for method in METHODS:
        options = ExplainOptions(method)  # type: ignore[arg-type]
        explain_batch(loaded, batch[:2], options)  # warm-up
        times[method] = seconds(lambda o=options: explain_batch(loaded, batch, o), repeats)  # type: ignore[misc]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--architectures", default=",".join(architecture_names()))
    parser.add_argument("--out", default="explain.json", help="file name under bench/results")
    args = parser.parse_args()
    device = torch.device(args.device)
    test = load_dataset("fashion_mnist", Settings().data_dir, train_subset=1, test_subset=IMAGES).test
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    results, rows = {}, []
    for name in args.architectures.split(","):
        times = measure(name, test.images, device, args.repeats)
        results[name] = {k: v.as_json() for k, v in times.items()}
        base = times["predict"].median
        rows.append(
            [name, f"{1000 * base:.1f}"]
            + [f"{1000 * times[m].median:.0f} ({times[m].median / base:.0f}x)" for m in METHODS]
        )
        print(f"{name}: done", file=sys.stderr)
    print(f"32 images per call, median of {args.repeats} (ms); uptime at start: {load}")
    print_table(["architecture", "predict", *METHODS], rows)
    machine = machine_info(device) | {"uptime_at_start": load, "uptime_at_end": subprocess.getoutput("uptime")}
    path = write_json(RESULTS_DIR / args.out, {"machine": machine, "images": IMAGES, "results": results})
    print(f"wrote {path}; uptime at end: {machine['uptime_at_end'].strip()}")


if __name__ == "__main__":
    main()
