"""The image built and the stack of docker-compose.yml run for real, on SQLite and then on PostgreSQL.

One image build per session (cached layers: only the code's change between commits), then per database: `migrate`
once, the API and two workers (`--scale worker=2`), the shared Fashion-MNIST mounted read-only
(tests/deploy/compose.test.yml), and everything asked through the API's published port: readiness, the
bootstrap token, a small job that succeeds although its worker is stopped in the middle, a prediction, and an
API restart that loses nothing. Skips, saying why, only where no container engine can be started
(tests/deploy/engine.py); docs/deployment.md has the measured times.
"""

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import make_url

from tests.db.databases import fresh_postgres_database, postgres_server_url
from tests.deploy.engine import ROOT, Engine, build_image, find_engine
from tests.deploy.stack import TOKEN, Stack, fashion_mnist_test_images, wait_for, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a cold first build takes minutes

# One tag per checkout: test sessions of two worktrees on one engine must not run each other's code.
IMAGE = f"convlab:test-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"
COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "tests" / "deploy" / "compose.test.yml"]
HOST_POSTGRES = ROOT / "tests" / "deploy" / "compose.host-postgres.yml"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
# Long enough that its worker's stop, sent at the job's first step, lands mid-job: 3 epochs of 160 steps (several
# seconds on 2 idle cores). A 48-step job once finished before the stop reached its worker (attempt 1, no
# takeover) on an idle machine. Momentum SGD learns enough for the prediction test.
JOB = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 3,
    "batch_size": 128,
    "train_subset": 20480,
    "test_subset": 1000,
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
}
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def engine() -> Engine:
    found = find_engine()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    started = time.monotonic()
    result = build_image(engine, IMAGE)
    assert result.returncode == 0, f"the image did not build:\n{result.stderr[-6000:]}"
    print(f"image built in {time.monotonic() - started:.1f} s")
    return IMAGE


@contextmanager
def database(backend: str) -> Iterator[tuple[dict[str, str], list[Path]]]:
    """Compose variables and extra files for `backend`: nothing for SQLite (the `state` volume), or a fresh
    database on the machine's PostgreSQL reached through its socket folder (compose.host-postgres.yml)."""
    if backend == "sqlite":
        yield {}, []
        return
    server = make_url(postgres_server_url())
    socket_dir = Path(os.environ.get("CONVLAB_TEST_PG_SOCKET_DIR", "/var/run/postgresql"))
    if not (socket_dir / f".s.PGSQL.{server.port or 5432}").exists():
        pytest.skip(f"containers reach the machine's PostgreSQL through its socket, and {socket_dir} has none")
    with fresh_postgres_database(postgres_server_url()) as url:
        name = make_url(url).database
        inside = f"postgresql+psycopg://{server.username}@/{name}?host=/run/postgresql&port={server.port or 5432}"
        yield {"CONVLAB_DATABASE_URL": inside, "CONVLAB_TEST_PG_SOCKET_DIR": str(socket_dir)}, [HOST_POSTGRES]


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, engine: Engine, image: str, data_dir: Path) -> Iterator[Stack]:
    with database(request.param) as (variables, files):
        stack = Stack(
            engine,
            project=f"convlabtest{os.getpid()}{request.param}",
            files=[*COMPOSE_FILES, *files],
            variables={"CONVLAB_IMAGE": image, "CONVLAB_TEST_DATA_DIR": str(data_dir), **variables},
        )
        started = time.monotonic()
        try:
            stack.compose("up", "-d", "--no-build", "--scale", "worker=2")
            wait_ready(stack)
            print(f"{request.param}: stack ready in {time.monotonic() - started:.1f} s")
            yield stack
        finally:
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")


@pytest.fixture(scope="module")
def state(stack: Stack) -> dict[str, Any]:
    """What one test of a stack leaves to the next (the token, the trained job)."""
    return {}


def _client(stack: Stack, state: dict[str, Any]) -> httpx.Client:
    if "token" not in state:
        pytest.fail("no token: the bootstrap token test failed")
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {state['token']}"}, timeout=30)


def test_migrate_ran_once_and_the_api_is_ready(stack: Stack):
    migrations = stack.containers("migrate")
    assert len(migrations) == 1 and stack.exit_code(migrations[0]) == 0
    assert len(stack.containers("api")) == 1 and len(stack.containers("worker")) == 2
    response = httpx.get(f"{stack.url}/health/ready", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_the_bootstrap_token_from_the_api_log_opens_the_api(stack: Stack, state: dict[str, Any]):
    (api,) = stack.containers("api")
    tokens = TOKEN.findall(stack.logs(api))
    assert len(tokens) == 1, "the API prints one bootstrap token on its first start"
    assert httpx.get(f"{stack.url}/jobs", timeout=10).status_code == 401
    state["token"] = tokens[0]
    with _client(stack, state) as client:
        assert client.get("/jobs").status_code == 200


def _holder(stack: Stack, job_id: int) -> str | None:
    """The worker container training `job_id`, from the workers GET /health lists (a worker's hostname is its
    container's short id); None while no worker lists it."""
    workers = httpx.get(f"{stack.url}/health", timeout=10).json()["workers"]
    hostnames = [w["hostname"] for w in workers if w["current_job_id"] == job_id]
    containers = [c for c in stack.containers("worker") for h in hostnames if c.startswith(h)]
    return containers[0] if len(containers) == 1 else None


def test_a_job_survives_its_worker_being_stopped(stack: Stack, state: dict[str, Any]):
    with _client(stack, state) as client:
        wait_for("two live workers", lambda: client.get("/health").json()["workers_alive"] == 2, stack, timeout=180)
        created = client.post("/jobs", json=JOB)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        def job() -> dict[str, Any]:
            return dict(client.get(f"/jobs/{job_id}").json())

        wait_for(
            "the job training",
            lambda: (j := job())["status"] == "running" and j["step"] >= 1,
            stack,
            timeout=240,
            every=0.1,
        )
        stopped = wait_for("the job's worker", lambda: _holder(stack, job_id), stack, timeout=30, every=0.1)
        stack.docker("stop", stopped)  # SIGTERM: checkpoint at the next batch, back to the queue, exit
        assert stack.exit_code(stopped) == 0
        done = wait_for("the job finishing", lambda: (j := job())["status"] in FINISHED and j, stack, timeout=300)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 2, "the other worker resumed the job"
    assert done["result"]["epochs_completed"] == JOB["epochs"]
    state["job"] = done


def test_a_prediction_from_the_trained_job(stack: Stack, state: dict[str, Any], data_dir: Path):
    if "job" not in state:
        pytest.fail("no trained job: the job test failed")
    images, labels = fashion_mnist_test_images(data_dir, 32)
    with _client(stack, state) as client:
        response = client.post(f"/jobs/{state['job']['id']}/predict", json={"pixels": images})
    assert response.status_code == 200, response.text
    body = response.json()
    assert 1 <= body["checkpoint_epoch"] <= JOB["epochs"] and len(body["predictions"]) == 32
    correct = sum(p["class_index"] == label for p, label in zip(body["predictions"], labels, strict=True))
    assert correct >= 12, f"{correct}/32 right: no better than guessing (1 in 10)"
    state["checkpoint"] = body["checkpoint_sha256"]


def test_the_compose_health_checks_pass(stack: Stack):
    """The health checks docker-compose.yml declares, run now in the API's and the running worker's containers
    (Docker's own schedule runs the worker's first one only 30 s after start)."""
    services = yaml.safe_load(COMPOSE_FILES[0].read_text())["services"]
    for service in ("api", "worker"):
        kind, *command = services[service]["healthcheck"]["test"]
        assert kind == "CMD"
        (container,) = [c for c in stack.containers(service) if stack.state(c) == "running"]
        stack.docker("exec", container, *command)  # fails the test unless it exits 0


def test_an_api_restart_loses_nothing(stack: Stack, state: dict[str, Any]):
    if "checkpoint" not in state:
        pytest.fail("no prediction: the prediction test failed")
    (api,) = stack.containers("api")
    with _client(stack, state) as client:
        before = client.get("/jobs").json()
        stack.docker("restart", api)
        wait_ready(stack)
        assert client.get("/jobs").json() == before, "the same jobs, seen with the same token"
        response = client.post(f"/jobs/{state['job']['id']}/predict", json={"pixels": [[[0] * 28] * 28]})
    assert response.status_code == 200 and response.json()["checkpoint_sha256"] == state["checkpoint"]
    assert TOKEN.findall(stack.logs(api)) == [state["token"]], "no second bootstrap token after the restart"
