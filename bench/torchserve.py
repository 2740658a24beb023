"""TorchServe 0.12 serving a convlab checkpoint, for the side-by-side serving benchmark (bench/serve_table.py).

Not a convlab dependency: install it where the benchmark runs (`pip install "torchserve==0.12.*"
torch-model-archiver pyyaml`; TorchServe imports yaml without declaring it) and have Java 17 on PATH.
The model is archived with bench/torchserve_handler.py and a model config of convlab's batch size (batchSize
32), a maxBatchDelay of the caller's choice and two workers; token authorization is off.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MODEL = "bn_lenet"


def available() -> bool:
    return (
        (BIN / "torchserve").exists() and (BIN / "torch-model-archiver").exists() and shutil.which("java") is not None
    )


def archive(work: Path, checkpoint: bytes, *, batch: int, delay_ms: int, workers: int) -> Path:
    """A model store holding bn_lenet.mar: the checkpoint, the handler and the batching config."""
    store = work / "model-store"
    store.mkdir(parents=True, exist_ok=True)
    (work / "checkpoint.safetensors").write_bytes(checkpoint)
    (work / "model-config.yaml").write_text(
        f"minWorkers: {workers}\nmaxWorkers: {workers}\nbatchSize: {batch}\nmaxBatchDelay: {delay_ms}\n"
        "responseTimeout: 60\n"
    )
    subprocess.run(
        [
            str(BIN / "torch-model-archiver"),
            "--model-name",
            MODEL,
            "--version",
            "1.0",
            "--handler",
            str(HERE / "torchserve_handler.py"),
            "--extra-files",
            str(work / "checkpoint.safetensors"),
            "--config-file",
            str(work / "model-config.yaml"),
            "--export-path",
            str(store),
            "--force",
        ],
        check=True,
    )
    return store


@contextmanager
def torchserve(
    work: Path, store: Path, *, port: int, management_port: int, metrics_port: int, grpc_ports: tuple[int, int]
) -> Iterator[str]:
    """TorchServe in the foreground of its own process group, serving bn_lenet; its inference URL. Every port is
    the caller's (its gRPC ones too, 7070 and 7071 by default), so that several can run side by side."""
    config = work / "config.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{port}\n"
        f"management_address=http://127.0.0.1:{management_port}\n"
        f"metrics_address=http://127.0.0.1:{metrics_port}\n"
        f"grpc_inference_port={grpc_ports[0]}\ngrpc_management_port={grpc_ports[1]}\n"
        "disable_token_authorization=true\n"
        "install_py_dep_per_model=false\n"
        f"model_store={store}\n"
    )
    log = (work / "torchserve.log").open("wb")
    command = [str(BIN / "torchserve"), "--foreground", "--ts-config", str(config), "--model-store", str(store)]
    command += ["--models", f"{MODEL}={MODEL}.mar", "--disable-token-auth", "--ncs"]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "LOG_LOCATION": str(work / "logs")}
    env["TMPDIR"] = str(work)  # its pid file (.model_server.pid) lives there: one per instance, side by side
    process = subprocess.Popen(command, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"http://127.0.0.1:{management_port}", process, work / "torchserve.log")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


def wait_ready(management: str, process: "subprocess.Popen[bytes]", log: Path) -> None:
    """Until every bn_lenet worker is READY (the management API's model description)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError, ValueError, KeyError, IndexError):
            workers = httpx.get(f"{management}/models/{MODEL}", timeout=2).json()[0]["workers"]
            if workers and all(w["status"] == "READY" for w in workers):
                return
        time.sleep(1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else "(no log)"
    raise RuntimeError(f"TorchServe did not become ready; the end of {log}:\n{tail}")
