"""Dataset uploads: POST /datasets time and peak memory for Fashion-MNIST's 60,000 PNGs and large colour archives.

    .venv/bin/python bench/datasets.py [--colour-mb 100 500] [--colour-size 32] [--no-fashion] [--json PATH]

Issue 24. One run on loopback; each archive lies in a temporary folder until its upload is done (about 1 GB of disk
at most: the 500 MB archive and the server's received copy):
  1. Build the archives: the 60,000 Fashion-MNIST training images as PNGs in class folders (a deflated zip of the
     real data, read by `load_dataset` from CONVLAB_DATA_DIR, else ../shared/datasets; torchvision's own reader
     wants the .gz files unpacked, which the shared folder does not hold), and for each `--colour-mb` a stored
     zip of that many megabytes (10^6 bytes) of random-noise RGB images, each side 256-512 px, PNG
     (compress_level 1: noise does not compress, so the bytes are pixels) and JPEG (quality 90) alternately,
     in 10 class folders.
  2. For each archive a fresh `convlab serve --workers 0` on a temporary SQLite database (authentication off
     on loopback), its peak-RSS counter reset once it answers /health; then the archive, streamed from disk,
     is the body of `POST /datasets?name=..&size=..` (httpx). Measured: wall time of upload + ingestion, when
     the body had fully arrived (the size of the server's upload file, polled), the server's peak RSS (VmHWM
     after the answer, and the RSS of the process and its children polled every 20 ms), this client's own peak
     RSS during the upload, the stored size the answer reports, and the load average before and after.
The default CONVLAB_DATASET_* limits admit all of these archives; none is raised. images/s is files divided by
the upload + ingestion seconds. A table goes to stdout and everything to JSON (default bench/results/datasets.json).
Results and what they mean: docs/benchmarks-datasets.md.
"""

import argparse
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, machine_info, print_table, write_json
from service.training.datasets import FASHION_MNIST_CLASSES, load_dataset

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CONVLAB_DATA_DIR", REPO.parent / "shared" / "datasets"))
MIB = 1024 * 1024


@dataclass(frozen=True)
class Archive:
    """A built archive and the `size` its upload asks for."""

    name: str
    path: Path
    files: int
    bytes: int
    image_size: int


@dataclass(frozen=True)
class Server:
    """A running `convlab serve`: where it answers, its process id, its state folder."""

    url: str
    pid: int
    state_dir: Path


def png_or_jpeg(pixels: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    options: dict[str, Any] = {"compress_level": 1} if fmt == "PNG" else {"quality": 90}
    Image.fromarray(pixels).save(out, format=fmt, **options)
    return out.getvalue()


def fashion_archive(folder: Path) -> Archive:
    """All 60,000 Fashion-MNIST training images as `fashion-mnist/<class>/<index>.png` in a deflated zip."""
    train = load_dataset("fashion_mnist", DATA_DIR).train
    folders = [c.replace("/", "-").replace(" ", "_").lower() for c in FASHION_MNIST_CLASSES]
    images, labels = train.images.numpy(), train.labels.tolist()  # images [N, 1, 28, 28] uint8
    path = folder / "fashion-mnist-train.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            archive.writestr(f"fashion-mnist/{folders[label]}/{i:05d}.png", png_or_jpeg(image[0], "PNG"))
    return Archive("fashion", path, len(labels), path.stat().st_size, 28)


def noise_archive(folder: Path, megabytes: int, *, image_size: int, seed: int) -> Archive:
    """About `megabytes` MB of random RGB images, 256-512 px a side, PNG and JPEG alternately, in 10 classes."""
    rng = np.random.default_rng(seed)
    path = folder / f"noise-{megabytes}mb.zip"
    count, written = 0, 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        while written < megabytes * 10**6:
            height, width = (int(s) for s in rng.integers(256, 513, size=2))
            fmt = "PNG" if count % 2 == 0 else "JPEG"
            data = png_or_jpeg(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), fmt)
            archive.writestr(f"noise/class{count % 10}/{count:05d}.{fmt.lower()}", data)
            count, written = count + 1, written + len(data)
    return Archive(f"noise{megabytes}", path, count, path.stat().st_size, image_size)


def status_kib(pid: int, key: str) -> int:
    """One `VmRSS`/`VmHWM` line of /proc/PID/status, in KiB; 0 once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(f"{key}:")), 0)


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                queue.extend(int(c) for c in children.read_text().split())
    return found


def tree_rss_kib(pid: int) -> int:
    return sum(status_kib(p, "VmRSS") for p in process_tree(pid))


def reset_peak(pid: int) -> None:
    """Set the process's VmHWM back to its current RSS (Linux >= 4.0), so the next peak is this run's own."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Sampler:
    """Polls, in a thread, the server tree's RSS and whether the body being received has fully arrived."""

    server: Server
    body_bytes: int
    interval: float = 0.02
    peak_kib: int = 0
    processes: int = 0
    body_received_s: float | None = None
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (seconds, KiB) every ~0.25 s
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "Sampler":
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            now = time.perf_counter() - self._started
            tree = process_tree(self.server.pid)
            rss = sum(status_kib(p, "VmRSS") for p in tree)
            self.peak_kib, self.processes = max(self.peak_kib, rss), max(self.processes, len(tree))
            if ticks % round(0.25 / self.interval) == 0:
                self.timeline.append((round(now, 2), rss))
            if self.body_received_s is None and self._received() >= self.body_bytes:
                self.body_received_s = now
            ticks += 1

    def _received(self) -> int:
        sizes = []
        for file in (self.server.state_dir / "uploads").glob("upload-*"):
            with contextlib.suppress(FileNotFoundError):
                sizes.append(file.stat().st_size)
        return max(sizes, default=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def started_server(state_dir: Path) -> Iterator[Server]:
    """`convlab serve --workers 0` on a temporary SQLite database; stopped (SIGTERM, then the group) on exit."""
    port = free_port()
    env = {**os.environ, "CONVLAB_STATE_DIR": str(state_dir), "CONVLAB_DATA_DIR": str(DATA_DIR)}
    env["CONVLAB_DATABASE_URL"] = f"sqlite:///{state_dir / 'convlab.db'}"
    command = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (state_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [*command, "--workers", "0", "--log-level", "warning"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, state_dir / "serve.log")
        yield Server(url, process.pid, state_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"convlab serve did not start; see {log}")


def upload(server: Server, archive: Archive) -> dict[str, Any]:
    """POST the archive as the body, streamed from disk; the answer, the times, memory and load."""
    me = os.getpid()
    load_before = os.getloadavg()
    server_before, client_before = tree_rss_kib(server.pid), status_kib(me, "VmRSS")
    reset_peak(server.pid)
    reset_peak(me)
    params: dict[str, str | int] = {"name": archive.name, "size": archive.image_size}
    with Sampler(server, archive.bytes) as sampler, archive.path.open("rb") as body:
        started = time.perf_counter()
        response = httpx.post(f"{server.url}/datasets", params=params, content=body, timeout=3600)
        seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"{archive.name}: {response.status_code} {response.text[:500]}")
    answer = response.json()
    return {
        "archive": {**asdict(archive), "path": archive.path.name},
        "seconds": seconds,
        "body_received_s": sampler.body_received_s,
        "images_per_s": archive.files / seconds,
        "server_rss_before_mib": server_before / 1024,
        "server_vmhwm_mib": status_kib(server.pid, "VmHWM") / 1024,
        "server_polled_peak_mib": sampler.peak_kib / 1024,
        "server_processes": sampler.processes,
        "client_rss_before_mib": client_before / 1024,
        "client_vmhwm_mib": status_kib(me, "VmHWM") / 1024,
        "stored_bytes": answer["stored_bytes"],
        "database_files": {p.name: p.stat().st_size for p in server.state_dir.glob("convlab.db*")},
        "counts": {"train": answer["train_images"], "test": answer["test_images"], "channels": answer["channels"]},
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "rss_timeline": sampler.timeline,
    }


def measure(archive: Archive, work: Path) -> dict[str, Any]:
    """Upload `archive` to a fresh server; print one line as soon as it is done."""
    state_dir = work / f"state-{archive.name}"
    state_dir.mkdir()
    with started_server(state_dir) as server:
        result = upload(server, archive)
    archive.path.unlink()  # one archive and its received copy on disk at a time
    print(
        f"{archive.name}: {result['seconds']:.1f} s, server peak {result['server_vmhwm_mib']:.0f} MiB "
        f"(from {result['server_rss_before_mib']:.0f}), load {result['load_after'][0]:.2f}",
        flush=True,
    )
    return result


def report(results: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> None:
    rows = [
        [
            r["archive"]["name"],
            f"{r['archive']['files']:,}",
            f"{r['archive']['bytes'] / 10**6:,.1f} MB",
            str(r["archive"]["image_size"]),
            f"{r['body_received_s'] or float('nan'):.1f}",
            f"{r['seconds']:.1f}",
            f"{r['images_per_s']:,.0f}",
            f"{r['server_rss_before_mib']:.0f} -> {r['server_vmhwm_mib']:.0f} ({r['server_polled_peak_mib']:.0f})",
            f"{r['client_rss_before_mib']:.0f} -> {r['client_vmhwm_mib']:.0f}",
            f"{r['stored_bytes'] / 10**6:,.1f} MB",
            f"{r['load_before'][0]:.2f} / {r['load_after'][0]:.2f}",
        ]
        for r in results
    ]
    headers = ["archive", "files", "bytes", "size", "body in s", "upload+ingest s", "img/s"]
    headers += ["server RSS MiB: start -> peak (polled)", "client RSS MiB", "stored", "load 1m before/after"]
    print_table(headers, rows)
    payload = {"machine": machine_info(torch.device("cpu")), "args": vars(args) | {"json": str(args.json)}}
    print(f"\nwrote {write_json(args.json, payload | {'wall_seconds': wall, 'results': results})} ({wall:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--colour-mb", type=int, nargs="*", default=[100, 500], help="sizes of the noise archives")
    parser.add_argument("--colour-size", type=int, default=32, help="the `size` the noise archives are stored at")
    parser.add_argument("--fashion", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "datasets.json")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="convlab-bench-datasets-") as tmp:
        work = Path(tmp)
        results = []
        if args.fashion:
            results.append(measure(fashion_archive(work), work))
        for seed, megabytes in enumerate(args.colour_mb):
            archive = noise_archive(work, megabytes, image_size=args.colour_size, seed=seed)
            results.append(measure(archive, work))
    report(results, args, time.time() - started)


if __name__ == "__main__":
    main()
