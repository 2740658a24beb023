"""One job across N processes against the same job in one: training throughput and wall time.

    .venv/bin/python bench/distributed.py [--models bn_lenet bn_lenet_concise] [--processes 1 2] [--reps 2]
                                          [--train-subset 8192] [--batch 256] [--device cpu] [--json PATH]

Each configuration runs `fit()` (1 process) or `fit_distributed()` (N processes, gloo on the CPU, NCCL on GPUs)
on the first `train_subset` Fashion-MNIST images for 2 epochs at the same global batch. Reported: the training
images/s of the second epoch (rank 0's clock; the first epoch carries the warm-up) and the wall time of the whole
call, which for N processes includes starting N interpreters. The total CPU threads are the same in every case
(each of N ranks takes 1/N of them). Medians with min-max over `reps`.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, Spread, machine_info, print_table, write_json
from service.jobspec.spec import JobRequest, JobSpec
from service.training import fit
from service.training.distributed import fit_distributed
from service.training.records import FitResult

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def run_once(spec: JobSpec, data_dir: Path, device: str) -> tuple[float, float]:
    """(second-epoch training images/s, wall seconds) of one run."""
    started = time.perf_counter()
    if spec.processes == 1:
        result: FitResult = fit(spec, data_dir=data_dir, device=device)
    else:
        result = fit_distributed(spec, data_dir=data_dir, device=device).result
    wall = time.perf_counter() - started
    assert result.status == "completed" and len(result.history) == 2, result.message
    return result.history[-1].images_per_sec, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["bn_lenet", "bn_lenet_concise"])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "distributed.json")
    args = parser.parse_args()
    rows, results = [], []
    for model in args.models:
        for processes in args.processes:
            spec = JobRequest(
                architecture=model,
                epochs=2,
                batch_size=args.batch,
                train_subset=args.train_subset,
                test_subset=1000,
                distributed={"processes": processes} if processes > 1 else None,
            ).resolve()
            runs = [run_once(spec, args.data_dir, args.device) for _ in range(args.reps)]
            rate, wall = Spread.of([r for r, _ in runs]), Spread.of([w for _, w in runs])
            rows.append([model, str(processes), rate.fmt(), wall.fmt(1)])
            results.append(
                {"model": model, "processes": processes, "images_per_sec": rate.as_json(), "wall_s": wall.as_json()}
            )
    print_table(["model", "processes", "train images/s (epoch 2)", "wall s (whole call)"], rows)
    payload: dict[str, Any] = {
        "machine": machine_info(torch.device(args.device)),
        "args": vars(args),
        "results": results,
    }
    print(f"wrote {write_json(args.json, {**payload, 'args': {k: str(v) for k, v in vars(args).items()}})}")


if __name__ == "__main__":
    main()
