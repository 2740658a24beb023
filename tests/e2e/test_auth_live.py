"""A live `convlab serve` with authentication required: the bootstrap token, the token commands, the lab budget
beside a fast /health, a streamed body refused while it streams, and logs that never hold a secret."""

import contextlib
import re
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.test_limits import LONG_LAB_CALL
from tests.e2e.conftest import free_port, serve_env, stop, wait_until_healthy

TOKEN = re.compile(r"cvl_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    env: dict[str, str]
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


def start_server(state_dir: Path, data_dir: Path, **extra: str) -> tuple[subprocess.Popen[bytes], Server]:
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = serve_env(state_dir, data_dir, CONVLAB_AUTH="required", **extra)
    stdout, stderr = state_dir / f"serve-{port}.out", state_dir / f"serve-{port}.err"
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "0",
        "--log-level",
        "debug",
    ]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", port, env, stdout, stderr)
    wait_until_healthy(server.url, process, stderr)
    return process, server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Server]:
    process, server = start_server(tmp_path_factory.mktemp("auth-live"), data_dir, CONVLAB_LAB_MAX_SECONDS="1")
    try:
        yield server
    finally:
        stop(process)


def bootstrap_token(server: Server) -> str:
    found = TOKEN.findall(server.stderr.read_text())
    assert len(found) == 1, "exactly one bootstrap token is printed"
    return found[0]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "service.cli", "token", *args]
    return subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=120, check=False)


def test_the_bootstrap_admin_token_is_printed_once_on_stderr_and_works(server):
    token = bootstrap_token(server)
    assert TOKEN.search(server.stdout.read_text()) is None
    assert httpx.get(f"{server.url}/jobs").status_code == 401
    assert httpx.get(f"{server.url}/tokens", headers=auth(token)).json()[0]["name"] == "bootstrap-admin"


def test_token_commands_create_list_and_revoke(server):
    created = cli(server, "create", "ci-reader", "--scope", "jobs:read", "--scope", "lab")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert TOKEN.fullmatch(secret)
    assert httpx.get(f"{server.url}/jobs", headers=auth(secret)).status_code == 200
    denied = httpx.get(f"{server.url}/tokens", headers=auth(secret))
    assert denied.status_code == 403 and "'admin'" in denied.json()["detail"]
    listed = cli(server, "list")
    assert "ci-reader" in listed.stdout and "jobs:read,lab" in listed.stdout and secret not in listed.stdout
    assert cli(server, "revoke", "ci-reader").returncode == 0
    assert httpx.get(f"{server.url}/jobs", headers=auth(secret)).status_code == 401
    missing = cli(server, "revoke", "ci-reader")
    assert missing.returncode == 1 and "no token named 'ci-reader'" in missing.stderr


def test_a_token_made_with_a_predict_rate_is_held_to_it_until_the_rate_is_changed(server):
    """`--predict-rate` on create and `token set`: the live server counts the token's predicts at its own rate
    (the server's default is no limit), from the next request after each change."""
    created = cli(server, "create", "metered", "--scope", "predict", "--predict-rate", "0.01")
    assert created.returncode == 0, created.stderr
    headers = auth(created.stdout.strip().splitlines()[-1])

    def predicts(n: int) -> list[int]:  # job 99 does not exist: 404 once admitted, 429 when over the rate
        return [
            httpx.post(f"{server.url}/jobs/99/predict", json={"pixels": [[0]]}, headers=headers).status_code
            for _ in range(n)
        ]

    codes = predicts(300)
    assert 404 in codes and codes[-1] == 429, codes  # a burst, then refused at 0.01/s
    assert "0.01/s" in cli(server, "list").stdout
    assert cli(server, "set", "metered", "--predict-rate", "0").returncode == 0
    assert set(predicts(50)) == {404}
    assert cli(server, "set", "metered", "--predict-rate", "default").stdout.strip().endswith("(CONVLAB_PREDICT_RATE)")
    assert set(predicts(50)) == {404}  # the server's default: no limit
    missing = cli(server, "set", "nobody", "--predict-rate", "1")
    assert missing.returncode == 1 and "no token named 'nobody'" in missing.stderr


def test_a_restart_makes_no_second_bootstrap_token(server, data_dir):
    state_dir = Path(server.env["CONVLAB_STATE_DIR"])
    process, again = start_server(state_dir, data_dir)
    try:
        assert TOKEN.search(again.stderr.read_text()) is None
        assert httpx.get(f"{again.url}/jobs", headers=auth(bootstrap_token(server))).status_code == 200
    finally:
        stop(process)


def test_a_supplied_admin_token_replaces_the_bootstrap(tmp_path, data_dir):
    supplied = "deployment-secret-" + "k" * 32
    process, server = start_server(tmp_path / "supplied", data_dir, CONVLAB_ADMIN_TOKEN=supplied)
    try:
        assert TOKEN.search(server.stderr.read_text()) is None
        assert httpx.get(f"{server.url}/tokens", headers=auth(supplied)).json()[0]["name"] == "admin-env"
    finally:
        stop(process)


def test_the_lab_budget_stops_a_long_call_while_health_stays_fast(server):
    lab = httpx.post(
        f"{server.url}/tokens", json={"name": "lab-user", "scopes": ["lab"]}, headers=auth(bootstrap_token(server))
    ).json()["token"]
    outcome: dict[str, object] = {}

    def long_call() -> None:
        start = time.monotonic()
        outcome["response"] = httpx.post(
            f"{server.url}/trajectories", json=LONG_LAB_CALL, headers=auth(lab), timeout=60
        )
        outcome["seconds"] = time.monotonic() - start

    caller = threading.Thread(target=long_call)
    caller.start()
    health_seconds = []
    while caller.is_alive():
        start = time.monotonic()
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        health_seconds.append(time.monotonic() - start)
        time.sleep(0.05)
    caller.join()
    response = outcome["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 422
    assert "budget of 1 s" in response.json()["detail"]
    assert float(outcome["seconds"]) < 1.0 + 1.0  # type: ignore[arg-type]
    # "fast" with room for a loaded 2-core CI machine: the typical answer, and no answer stuck behind the lab
    assert len(health_seconds) >= 3 and statistics.median(health_seconds) < 0.25 and max(health_seconds) < 2.0


def test_a_streamed_body_is_refused_before_it_is_all_sent(server):
    """A chunked body claiming to go on (200 MiB) is answered 413 once 1 MiB has arrived, while it still streams.

    uvicorn closes the connection after that answer with the rest of the body unread, which can reset it
    before this client reads the answer; the access log then shows the 413 instead."""
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    sent, answer = 0, ""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        head = (
            b"POST /jobs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        connection.sendall(head)
        with contextlib.suppress(ConnectionError):
            for _ in range(3200):  # up to 200 MiB, but the server answers long before
                if select.select([connection], [], [], 0.01)[0]:
                    break
                connection.sendall(chunk)
                sent += 65536
            while "}" not in answer and (part := connection.recv(65536)):  # the body may follow in a later segment
                answer += part.decode(errors="replace")
    assert sent < 8 * 1024 * 1024, f"the server let {sent} bytes through"
    if answer:
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert "max_body_bytes" in answer
    time.sleep(0.3)
    assert '"POST /jobs HTTP/1.1" 413' in server.logs()


def test_logs_of_an_authenticated_session_hold_no_token(server):
    admin = bootstrap_token(server)
    created = httpx.post(f"{server.url}/tokens", json={"name": "logged", "scopes": ["jobs:read"]}, headers=auth(admin))
    secret = created.json()["token"]
    httpx.get(f"{server.url}/jobs?limit=5", headers=auth(secret))
    httpx.get(f"{server.url}/jobs", headers=auth("cvl_" + "n" * 43))
    httpx.delete(f"{server.url}/tokens/logged", headers=auth(admin))
    httpx.get(f"{server.url}/jobs", headers=auth(secret))
    time.sleep(0.3)  # let the access log reach the file
    logs = server.logs()
    assert "GET /jobs?limit=5" in logs  # the access log is on (debug level) and was captured
    assert secret not in logs and "cvl_" + "n" * 43 not in logs
    assert logs.count(admin) == 1  # the bootstrap banner only
