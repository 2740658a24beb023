"""The measured example of docs/sweeps.md: a 3 x 3 grid of learning rate and batch size for BN-LeNet on a
Fashion-MNIST subset, run through the real API and worker code on a temporary SQLite database.

    nice -n 10 .venv/bin/python bench/sweep_grid.py [--train-subset 10000] [--test-subset 2000] [--epochs 3]
                                                   [--plot docs/sweeps-grid.png] [--json PATH]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from fastapi.testclient import TestClient

from bench.common import RESULTS_DIR, machine_info, print_table, write_json
from service.config import Settings
from service.main import create_app
from service.worker import run_worker

LEARNING_RATES = [0.03, 0.3, 3.0]
BATCH_SIZES = [64, 128, 256]


def sweep_body(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "BN-LeNet lr x batch size",
        "base": {
            "architecture": "bn_lenet",
            "dataset": "fashion_mnist",
            "epochs": args.epochs,
            "train_subset": args.train_subset,
            "test_subset": args.test_subset,
            "seed": 0,
        },
        "space": {"optimizer.lr": {"values": LEARNING_RATES}, "batch_size": {"values": BATCH_SIZES}},
        "sampler": "grid",
        "metric": {"name": "test_acc", "goal": "max"},
        "max_concurrent": 1,
        "max_failed": 9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-subset", type=int, default=10_000)
    parser.add_argument("--test-subset", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    parser.add_argument("--plot", type=Path, default=Path("docs/sweeps-grid.png"))
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "sweep_grid.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), data_dir=args.data_dir, device="cpu")
        with TestClient(create_app(settings)) as client:
            sweep = client.post("/sweeps", json=sweep_body(args)).json()
            started = time.perf_counter()
            run_worker(settings, burst=True)
            seconds = time.perf_counter() - started
            done = client.get(f"/sweeps/{sweep['id']}").json()
            args.plot.write_bytes(client.get(f"/sweeps/{sweep['id']}/plot.png").content)
    rows = []
    for trial in done["trials"]:
        value = trial["value"]
        rows.append(
            [
                str(trial["number"]),
                f"{trial['params']['optimizer.lr']:g}",
                str(trial["params"]["batch_size"]),
                trial["status"],
                f"{value:.3f}" if value is not None else "-",
            ]
        )
    print_table(["trial", "lr", "batch", "status", "test acc"], rows)
    best = done["best"]
    print(f"best: trial {best['number']} {best['params']} test_acc={best['value']:.3f}; {seconds:.0f} s for 9 trials")
    write_json(args.json, {"machine": machine_info(torch.device("cpu")), "seconds": seconds, "sweep": done})


if __name__ == "__main__":
    main()
