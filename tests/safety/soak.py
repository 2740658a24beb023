"""A chaos soak: convlab on its own PostgreSQL cluster (or a SQLite file), replicated job specs, and for N minutes
kill -9 and SIGTERM of workers and of the API and crashes of the database; then the checks: every job succeeded,
no step recorded twice or missing, every replica bit-identical to its spec's others, no 5xx answer but 503.

    PYTHONPATH=. CONVLAB_DATA_DIR=../shared/datasets python -m tests.safety.soak --backend postgresql --minutes 10

prints a summary and writes it as JSON to bench/results/chaos_soak_<backend>.json. The suite runs two minutes of it
(tests/safety/test_chaos_soak.py).
"""

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from service.storage.db import make_engine, upgrade_database
from tests.conftest import REPO_ROOT, shared_datasets_dir
from tests.safety.cluster import Cluster, own_cluster

# Three specs, three replicas each: 3 epochs of 16 steps, every step logged.
SPECS = [
    {"architecture": "bn_lenet", "dataset": "synthetic", "epochs": 3, "batch_size": 32, "train_subset": 512,
     "test_subset": 64, "seed": seed, "optimizer": {"name": "sgd", "lr": 0.1}}
    for seed in (1, 2, 3)
]  # fmt: skip
REPLICAS = 3
WORKERS = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Fleet:
    """The API and worker processes, restarted when they die (as a supervisor would)."""

    env: dict[str, str]
    logs: Path
    port: int
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{args[0]}-{time.monotonic_ns()}.log").open("wb")
        command = [sys.executable, "-m", "service.cli", *args]
        return subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)

    def keep_up(self) -> None:
        with self.lock:
            self._keep_up()

    def _keep_up(self) -> None:
        if self.api is None or self.api.poll() is not None:
            self.api = self._start("serve", "--workers", "0", "--port", str(self.port), "--no-migrate")
        self.workers = [w if w.poll() is None else self._start("worker", "--no-migrate") for w in self.workers]
        while len(self.workers) < WORKERS:
            self.workers.append(self._start("worker", "--no-migrate"))

    def stop(self) -> None:
        for process in [*self.workers, *([self.api] if self.api else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, *([self.api] if self.api else [])]:
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class Tally:
    """What the pollers saw and what the chaos did."""

    answers: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)


def poll(base: str, tally: Tally, stop: threading.Event) -> None:
    """GET the job list and a job over and over, as clients would, counting answers; a 5xx but 503 is bad."""
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            for path in ("/jobs?limit=5", "/jobs/1", "/health/ready"):
                try:
                    response = client.get(path)
                except httpx.HTTPError:
                    tally.answers["no answer (API down)"] += 1
                    time.sleep(0.5)
                    continue
                tally.answers[str(response.status_code)] += 1
                if response.status_code >= 500 and response.status_code != 503:
                    tally.bad.append(f"{path} -> {response.status_code}: {response.text[:200]}")
                elif response.status_code == 503 and "Retry-After" not in response.headers:
                    tally.bad.append(f"{path} -> 503 without Retry-After")
            time.sleep(0.1)


def submit_round(fleet: Fleet, tally: Tally) -> list[int]:
    """Submit every spec REPLICAS times, retrying through outages; the job ids."""
    return [_post_until_accepted(fleet, spec, tally) for spec in SPECS for _ in range(REPLICAS)]


def _post_until_accepted(fleet: Fleet, spec: dict[str, Any], tally: Tally) -> int:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        fleet.keep_up()
        try:
            response = httpx.post(f"http://127.0.0.1:{fleet.port}/jobs", json=spec, timeout=10)
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if response.status_code == 201:
            return int(response.json()["id"])
        tally.answers[f"POST {response.status_code}"] += 1
        if response.status_code >= 500 and response.status_code != 503:
            tally.bad.append(f"POST /jobs -> {response.status_code}: {response.text[:200]}")
        time.sleep(0.5)
    raise RuntimeError("POST /jobs was not accepted for 300 s")


def strike(fleet: Fleet, cluster: Cluster | None, tally: Tally, rng: random.Random) -> None:
    """One random blow: kill -9 or SIGTERM a worker or the API, or crash the database and start it again."""
    kinds = {"kill -9 worker": 3, "SIGTERM worker": 2, "kill -9 API": 1, "SIGTERM API": 1}
    if cluster is not None:
        kinds["crash database"] = 2
    kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    if kind == "crash database" and cluster is not None:
        tally.actions[kind] += 1
        cluster.crash()
        time.sleep(rng.uniform(0.5, 3.0))
        _restart(cluster)
        return
    if "API" in kind and not _answers(fleet):
        kind = kind.replace("API", "worker")  # an API still starting is not struck again: it would never serve
    tally.actions[kind] += 1
    with fleet.lock:
        target = fleet.api if "API" in kind else rng.choice(fleet.workers)
    if target is not None and target.poll() is None:
        target.send_signal(signal.SIGKILL if "-9" in kind else signal.SIGTERM)


def _answers(fleet: Fleet) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{fleet.port}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _restart(cluster: Cluster) -> None:
    for _ in range(20):  # the crashed server's children may hold its shared memory for a moment
        try:
            cluster.start()
            return
        except subprocess.CalledProcessError:
            time.sleep(1)
    raise RuntimeError(f"the database did not restart; see {cluster.root / 'log'}")


def _rows(url: str, query: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query)))
    finally:
        engine.dispose()


def check(url: str, job_ids: list[int]) -> dict[str, Any]:
    """The verdict: statuses, steps recorded exactly once, replicas identical (losses, epochs, final weights)."""
    jobs = {r[0]: r for r in _rows(url, "SELECT id, status, spec, attempt, total_steps FROM jobs")}
    problems = [f"job {i} is {jobs[i][1]}" for i in job_ids if jobs[i][1] != "succeeded"]
    problems += [] if job_ids else ["no job was accepted during the soak"]
    fingerprints: dict[str, set[str]] = {}
    for job_id in job_ids:
        steps = [r[0] for r in _rows(url, f"SELECT step FROM loss_points WHERE job_id = {job_id} ORDER BY step")]
        if steps != list(range(1, (jobs[job_id][4] or 0) + 1)):
            problems.append(f"job {job_id}: steps recorded {len(steps)}, expected 1..{jobs[job_id][4]}")
        spec = jobs[job_id][2] if isinstance(jobs[job_id][2], dict) else json.loads(jobs[job_id][2])
        fingerprints.setdefault(str(spec["seed"]), set()).add(_fingerprint(url, job_id))
    problems += [f"replicas of seed {seed} differ" for seed, prints in fingerprints.items() if len(prints) != 1]
    attempts = sum(jobs[i][3] for i in job_ids)
    return {
        "jobs": len(job_ids),
        "attempts": attempts,
        "resumed_attempts": attempts - len(job_ids),
        "problems": problems,
    }


def _fingerprint(url: str, job_id: int) -> str:
    """A hash of a job's step losses, epoch metrics and last checkpoint's tensors (not its metadata or times)."""
    from safetensors.torch import load

    digest = hashlib.sha256()
    for query in (
        f"SELECT step, loss FROM loss_points WHERE job_id = {job_id} ORDER BY step",
        f"SELECT epoch, train_loss, train_acc, test_loss, test_acc FROM epoch_metrics WHERE job_id = {job_id} "
        "ORDER BY epoch",
    ):
        digest.update(repr([tuple(r) for r in _rows(url, query)]).encode())
    last = _rows(url, f"SELECT data FROM checkpoints WHERE job_id = {job_id} ORDER BY step DESC LIMIT 1")[0][0]
    for name, tensor in sorted(load(bytes(last)).items()):
        digest.update(name.encode() + tensor.numpy().tobytes())
    return digest.hexdigest()


@contextmanager
def database(backend: str, directory: Path) -> Iterator[tuple[str, Cluster | None]]:
    """The soak's own database: a PostgreSQL cluster started here (so that it can be crashed), or a SQLite file."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'convlab.db'}", None
        return
    with own_cluster() as cluster:
        yield cluster.url, cluster


def soak(backend: str, minutes: float, *, seed: int = 0, interval: tuple[float, float] = (2.0, 6.0)) -> dict[str, Any]:
    """Run the soak; the summary (also the verdict's problems: empty when everything held)."""
    rng, tally, stop = random.Random(seed), Tally(), threading.Event()
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="convlab-soak-")))
        url, cluster = stack.enter_context(database(backend, directory))
        upgrade_database(url)
        fleet = Fleet(_environment(url, directory), directory, _free_port())
        stack.callback(fleet.stop)
        base = f"http://127.0.0.1:{fleet.port}"
        fleet.keep_up()
        started = time.monotonic()
        pollers = [threading.Thread(target=poll, args=(base, tally, stop), daemon=True) for _ in range(2)]
        for thread in pollers:
            thread.start()
        job_ids = _chaos(fleet, cluster, tally, rng, base, until=started + minutes * 60, interval=interval)
        _drain(fleet, url, job_ids)
        stop.set()
        verdict = check(url, job_ids)
    elapsed = time.monotonic() - started
    return {"backend": backend, "minutes": minutes, "seconds": round(elapsed, 1), "actions": dict(tally.actions),
            "answers": dict(tally.answers), "bad_answers": tally.bad[:20], **verdict,
            "problems": verdict["problems"] + tally.bad[:20]}  # fmt: skip


def _chaos(
    fleet: Fleet,
    cluster: Cluster | None,
    tally: Tally,
    rng: random.Random,
    base: str,
    until: float,
    interval: tuple[float, float],
) -> list[int]:
    """Strike every few seconds until `until` while another thread submits a new round once the last finished."""
    job_ids: list[int] = []
    submitter = threading.Thread(target=_submit_rounds, args=(fleet, tally, base, until, job_ids), daemon=True)
    submitter.start()
    while time.monotonic() < until:
        fleet.keep_up()
        time.sleep(rng.uniform(*interval))
        strike(fleet, cluster, tally, rng)
    submitter.join()
    return job_ids


def _submit_rounds(fleet: Fleet, tally: Tally, base: str, until: float, job_ids: list[int]) -> None:
    round_ids: list[int] = []
    while time.monotonic() < until:
        if not round_ids or _all_finished(base, round_ids):
            try:
                round_ids = submit_round(fleet, tally)
            except RuntimeError:
                continue  # not accepted for 300 s: try the round again
            job_ids += round_ids
        time.sleep(1)


def _all_finished(base: str, ids: list[int]) -> bool:
    try:
        return all(httpx.get(f"{base}/jobs/{i}", timeout=10).json().get("status") == "succeeded" for i in ids)
    except (httpx.HTTPError, ValueError):
        return False


def _drain(fleet: Fleet, url: str, job_ids: list[int], timeout: float = 900) -> None:
    """Let the fleet finish every job, untouched, restarting what died."""
    deadline = time.monotonic() + timeout
    wanted = ",".join(map(str, job_ids)) or "0"
    while time.monotonic() < deadline:
        fleet.keep_up()
        rows = _rows(url, f"SELECT count(*) FROM jobs WHERE id IN ({wanted}) AND status IN ('queued', 'running')")
        if rows[0][0] == 0:
            return
        time.sleep(1)


def _environment(url: str, directory: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVLAB_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        CONVLAB_DATABASE_URL=url,
        CONVLAB_STATE_DIR=str(directory),
        CONVLAB_DATA_DIR=str(shared_datasets_dir()),
        CONVLAB_LEASE_SECONDS="3",
        CONVLAB_POLL_SECONDS="0.3",
        CONVLAB_MAX_LOST_LEASES="1000",  # the soak kills workers on purpose: a job must not end failed for it
        CONVLAB_DEVICE="cpu",
        CONVLAB_DB_STATEMENT_TIMEOUT_MS="10000",
        OMP_NUM_THREADS="1",
    )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, nargs=2, default=(2.0, 6.0), help="seconds between blows")
    args = parser.parse_args()
    started = os.getloadavg()
    summary = {**soak(args.backend, args.minutes, interval=tuple(args.interval)), "load": [started, os.getloadavg()]}
    print(json.dumps(summary, indent=2))
    out = REPO_ROOT / "bench" / "results" / f"chaos_soak_{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
