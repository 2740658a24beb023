"""The book's 10-epoch recipes on real Fashion-MNIST through convlab's fit(), beside the book's table.

    .venv/bin/python bench/accuracy.py [--models bn_lenet] [--recipes book cosine] [--seeds 0]
                                       [--epochs 10] [--device auto] [--json PATH]

Recipes: `book` is the preset JobRequest.resolve() fills in (SGD, batch 256, 10 epochs, the book's lr and resize,
Xavier init, constant lr); `cosine` keeps all of that but anneals the same lr per step to 0 (convlab's suggested
fix for the book's unstable test accuracy). Test accuracy is measured after every epoch in eval mode (moving
BatchNorm statistics), as the book does. ResNet-18 and DenseNet at 96x96 are supported but take hours on a 2-core
CPU: run them on a GPU.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, machine_info, print_table, write_json
from service.jobspec.spec import JobRequest, SchedulerSpec
from service.training import Callbacks, EpochRecord, fit
from service.training.runtime import resolve_device

# d2l-en 0.17.5 (V100): train loss, train acc, test acc after 10 epochs (../shared/docs/anchors.md).
BOOK = {
    "bn_lenet": (0.269, 0.900, 0.838),
    "bn_lenet_concise": (0.278, 0.897, 0.836),
    "resnet18": (0.013, 0.997, 0.918),
    "densenet": (0.139, 0.950, 0.821),
}
RECIPES = {"book": SchedulerSpec(), "cosine": SchedulerSpec(name="cosine")}
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


class EpochPrinter(Callbacks):
    def __init__(self, label: str) -> None:
        self.label = label
        self.epochs: list[EpochRecord] = []

    def on_epoch(self, record: EpochRecord) -> None:
        self.epochs.append(record)
        print(
            f"  {self.label} epoch {record.epoch:2d}: train loss {record.train_loss:.3f} "
            f"train acc {record.train_acc:.3f} test acc {record.test_acc:.3f} lr {record.lr:.4f} "
            f"{record.seconds:.1f}s ({record.images_per_sec:,.0f} img/s)",
            flush=True,
        )


def run_one(model: str, recipe: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    spec = JobRequest(architecture=model, seed=seed, epochs=args.epochs, scheduler=RECIPES[recipe]).resolve()
    printer = EpochPrinter(f"{model}/{recipe}/seed {seed}")
    started = time.perf_counter()
    result = fit(spec, data_dir=args.data_dir, callbacks=printer, device=args.device)
    last = printer.epochs[-1]
    later = [e.test_acc for e in printer.epochs[1:]] or [last.test_acc]
    return {
        "model": model,
        "recipe": recipe,
        "seed": seed,
        "status": result.status,
        "train_loss": last.train_loss,
        "train_acc": last.train_acc,
        "test_acc": last.test_acc,
        "test_acc_range_after_epoch_1": [min(later), max(later)],
        "seconds_per_epoch": sum(e.seconds for e in printer.epochs) / len(printer.epochs),
        "wall_seconds": time.perf_counter() - started,
        "epochs": [vars(e) for e in printer.epochs],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["bn_lenet"], choices=[*BOOK, "lenet"])
    parser.add_argument("--recipes", nargs="+", default=["book", "cosine"], choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    machine = machine_info(device)
    print(f"machine: {machine}")
    runs = [run_one(m, r, s, args) for m in args.models for r in args.recipes for s in args.seeds]
    rows = []
    for run in runs:
        book = BOOK.get(run["model"])
        low, high = run["test_acc_range_after_epoch_1"]
        rows.append(
            [
                run["model"],
                run["recipe"],
                str(run["seed"]),
                f"{run['train_loss']:.3f}",
                f"{run['train_acc']:.3f}",
                f"{run['test_acc']:.3f}",
                f"{low:.2f}-{high:.2f}",
                f"{run['seconds_per_epoch']:.1f}",
                " / ".join(f"{v:.3f}" for v in book) if book else "n/a",
            ]
        )
    headers = ["model", "recipe", "seed", "train loss", "train acc", "test acc", "test acc ep2+", "s/epoch"]
    print_table([*headers, "book: loss / train acc / test acc"], rows)
    path = write_json(args.json or RESULTS_DIR / f"accuracy-{device.type}.json", {"machine": machine, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
