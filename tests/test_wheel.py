"""The wheel works outside the repository: built, installed into a new virtualenv, served from an empty folder.

How the new virtualenv gets its dependencies, honestly and without a second 5 GB torch install: it is made with
`python -m venv --without-pip`, and one `.pth` file in its site-packages appends this interpreter's site-packages
(where torch, FastAPI, Alembic ... are installed) to its sys.path. A directory line in a `.pth` file only extends
sys.path; the `.pth` files inside that directory are not run, so the checkout's editable install (an import hook
that such a file installs) stays out, and `service` and `models` can only come from the wheel, which the test
checks. The wheel is built from a copy of the sources (no build/ or egg-info in the checkout), without build
isolation (no index needed), and installed with --no-deps --no-index by this interpreter's pip acting on the new
virtualenv (`pip --python`; --force-reinstall because the checkout's own convlab is visible too, and pip leaves
that one alone as outside the environment), so the `convlab` script it writes runs the new virtualenv's python.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import free_port, stop, wait_until_healthy

pytestmark = pytest.mark.slow

PACKAGED = (
    "service/migrations/env.py",
    "service/migrations/versions/0001_initial.py",
    "service/web/templates/base.html",
    "service/static/web/dashboard.css",
    "service/static/swagger-ui/swagger-ui-bundle.js",
    "service/static/redoc/redoc.standalone.js",
    "service/static/vendor/htmx/htmx.min.js",
    "service/monitoring/prometheus.yml",
    "service/monitoring/alerts.yml",
    "service/monitoring/grafana/dashboards/convlab.json",
)
JOB = {"architecture": "bn_lenet", "dataset": "synthetic", "epochs": 1, "batch_size": 128, "train_subset": 512}


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    args = [str(c) for c in command]
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("service", "models", "alembic"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "--no-index"]
    run(*pip_wheel, "--wheel-dir", tmp_path / "dist", "--quiet")
    return next((tmp_path / "dist").glob("convlab-*.whl"))


def install(wheel: Path, venv: Path) -> Path:
    """The wheel installed into a new virtualenv that sees this interpreter's dependencies; its bin directory."""
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "convlab-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    options = ["--no-deps", "--no-index", "--force-reinstall", "--quiet"]  # beside the checkout's own convlab
    run(sys.executable, "-m", "pip", "--python", python, "install", *options, wheel, env=clean_env())
    return venv / "bin"


def clean_env(**extra: str) -> dict[str, str]:
    """No CONVLAB_* settings and no PYTHONPATH: only what an installed convlab finds by itself."""
    keep = {"PATH", "HOME", "LANG", "TMPDIR"}
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}


def test_the_wheel_carries_its_files_and_serves_a_job_from_an_empty_folder(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(PACKAGED) <= names, sorted(set(PACKAGED) - names)
    assert not any(name.startswith(("alembic/", "tests/")) for name in names)  # nothing shadows the alembic library
    bin_dir = install(wheel, tmp_path / "venv")
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    imports = "import service, models; print(service.__file__, models.__file__)"
    where = run(bin_dir / "python", "-c", imports, cwd=empty, env=clean_env())
    assert all(path.startswith(str(tmp_path / "venv")) for path in where.split()), where
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [bin_dir / "convlab", "serve", "--port", str(port), "--workers", "1"],
            cwd=empty,
            env=clean_env(CONVLAB_POLL_SECONDS="0.2", CONVLAB_DEVICE="cpu", OMP_NUM_THREADS="1"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server, log)
        check_the_service(f"http://127.0.0.1:{port}", log)
    finally:
        stop(server)
    assert (empty / ".convlab" / "convlab.db").is_file()  # a new SQLite database, migrated by serve


def check_the_service(url: str, log: Path) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health/ready").json()["status"] == "ok", log.read_text()
        dashboard = client.get("/")
        assert dashboard.status_code == 200 and "convlab" in dashboard.text
        assert client.get("/static/web/dashboard.css").status_code == 200
        docs = client.get("/docs")
        assert docs.status_code == 200 and "/static/swagger-ui/swagger-ui-bundle.js" in docs.text
        assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
        assert client.get("/static/redoc/redoc.standalone.js").status_code == 200
        job = client.post("/jobs", json=JOB)
        assert job.status_code == 201, job.text
        deadline = time.monotonic() + 180
        while (status := client.get(f"/jobs/{job.json()['id']}").json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"job still {status['status']}:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        assert status["status"] == "succeeded", status["error"]
        assert status["result"]["epochs_completed"] == 1 and status["result"]["final"]["test_acc"] is not None
