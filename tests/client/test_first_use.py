"""A new user's first job: no data directory, downloads allowed, the dataset arriving from a (local) mirror."""

import os
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import start_serve
from tests.e2e.conftest import free_port, stop
from tests.mirror import serve_directory


def test_the_first_job_downloads_its_dataset_and_watch_shows_it(tmp_path: Path, data_dir: Path):
    state = tmp_path / "state"
    state.mkdir()
    with serve_directory(data_dir) as mirror:  # a data directory is a mirror
        port = free_port()
        env = {"CONVLAB_DATA_DIR": "", "CONVLAB_ALLOW_DOWNLOAD": "true", "CONVLAB_DATASET_MIRROR": mirror.url}
        server = start_serve(state, data_dir, port, workers=1, **env)
        try:
            client_env = {key: value for key, value in os.environ.items() if not key.startswith("CONVLAB_")}
            client_env["CONVLAB_URL"] = f"http://127.0.0.1:{port}"
            submit = ["jobs", "submit", "--arch", "bn_lenet", "--dataset", "mnist", "--epochs", "1", "--watch"]
            small = ["--set", "train_subset=512", "--set", "test_subset=128", "--batch-size", "128"]
            done = subprocess.run(
                [sys.executable, "-m", "service.cli", *submit, *small],
                env=client_env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            stop(server)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    verified = [line.split()[3] for line in lines if line.startswith("dataset mnist: verified ")]
    assert sorted(f"MNIST/raw/{name}" for name in verified) == sorted(mirror.requests) and len(verified) == 4
    assert lines[-1].startswith("job 1: succeeded")
    assert sorted(p.name for p in (state / "datasets" / "MNIST" / "raw").iterdir()) == sorted(verified)
