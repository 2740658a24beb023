"""Large histories: GET /jobs/{id}/history?max_points=N on a job with 100,000 logged steps.

    .venv/bin/python bench/history.py [--steps 100000] [--max-points 2000] [--repeats 10] [--json PATH]

Builds a temporary SQLite database (migrated as the server does), stores one job with `--steps` loss points
(a decaying, noisy curve with a few spikes) and 20 epochs, then times over HTTP (the app in-process through
Starlette's TestClient) the thinned answer the dashboard asks for and, for scale, the full series; and, in this
process, the min/max bucket downsampling alone. Medians with [min-max] of `--repeats` runs.
"""

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Spread
from service.config import AccessSettings, AuthMode, Settings
from service.jobspec.spec import JobRequest
from service.main import create_app
from service.records import StepRecord
from service.storage import jobs
from service.storage.orm import EpochMetric, LossPoint
from service.training.downsample import downsample_steps


def losses(n: int) -> list[float]:
    rng = random.Random(0)
    values = [2.3 * math.exp(-i / (n / 5)) + 0.2 + 0.05 * rng.random() for i in range(n)]
    for spike in (n // 7, n // 2, 4 * n // 5):
        values[spike] = 9.0
    return values


def fill(app, n: int) -> int:
    per_epoch = n // 20
    with app.state.session_factory() as session:
        job = jobs.create_job(session, spec=JobRequest(architecture="bn_lenet", epochs=20).resolve())
        rows = [
            {
                "job_id": job.id,
                "attempt": 1,
                "step": i + 1,
                "epoch": i // per_epoch + 1,
                "examples_seen": (i + 1) * 32,
                "loss": loss,
            }
            for i, loss in enumerate(losses(n))
        ]
        session.execute(insert(LossPoint), rows)
        session.execute(
            insert(EpochMetric),
            [
                {
                    "job_id": job.id,
                    "attempt": 1,
                    "epoch": e,
                    "train_loss": 1.0,
                    "train_acc": 0.5,
                    "test_loss": 1.0,
                    "test_acc": 0.5,
                    "lr": 0.1,
                    "seconds": 10.0,
                    "images_per_sec": 1000.0,
                }
                for e in range(1, 21)
            ],
        )
        session.commit()
        return job.id


def timed(fn, repeats: int) -> Spread:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return Spread.of(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--max-points", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), access=AccessSettings(auth=AuthMode.off))
        with TestClient(create_app(settings)) as client:
            job_id = fill(client.app, args.steps)
            thin = client.get(f"/jobs/{job_id}/history", params={"max_points": args.max_points}).json()
            assert thin["total_steps_recorded"] == args.steps and len(thin["steps"]) <= args.max_points
            assert max(s["loss"] for s in thin["steps"]) == 9.0, "the spikes survive"

            def thinned() -> None:
                assert client.get(f"/jobs/{job_id}/history", params={"max_points": args.max_points}).status_code == 200

            def full() -> None:
                assert client.get(f"/jobs/{job_id}/history").status_code == 200

            served = timed(thinned, args.repeats)
            whole = timed(full, max(3, args.repeats // 3))
    points = [StepRecord(i + 1, 1, i, v) for i, v in enumerate(losses(args.steps))]
    alone = timed(lambda: downsample_steps(points, args.max_points), args.repeats)
    load = os.getloadavg()[0]
    print(f"history of {args.steps:,} steps, median [min-max] of the runs, ms ({os.cpu_count()} CPUs, load {load:.1f})")
    print(f"  GET /history?max_points={args.max_points} ({len(thin['steps'])} points): {served.fmt(1)}")
    print(f"  GET /history (all {args.steps:,} points):            {whole.fmt(1)}")
    print(f"  downsample_steps alone:                        {alone.fmt(1)}")


if __name__ == "__main__":
    main()
