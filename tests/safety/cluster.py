"""A throw-away PostgreSQL cluster of the test's own (initdb/pg_ctl as the `postgres` user, on a free port), so that
a test can stop it, crash it and start it again without touching the machine's server."""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_USER = "postgres"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(*command: str) -> list[str]:
    return command if os.geteuid() != 0 else ["runuser", "-u", PG_USER, "--", *command]  # type: ignore[return-value]


class Cluster:
    """One PostgreSQL cluster in a temporary directory: `url` names its `convlab` database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/convlab"

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_postgres(*command), capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "--no-sync", "-E", "UTF8")
        self.start()
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "convlab")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        """A clean, fast shutdown (open connections are ended)."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def crash(self) -> None:
        """kill -9 of the postmaster, as a machine losing its database server would."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            time.sleep(0.5)  # its children notice the postmaster is gone and exit

    def is_running(self) -> bool:
        return self.run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A fresh cluster for the test, removed afterwards; skipped (saying why) without initdb and pg_ctl."""
    missing = [tool for tool in ("initdb", "pg_ctl", "createdb") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"a throw-away PostgreSQL cluster needs {', '.join(missing)} on PATH")
    if os.geteuid() == 0 and not _user_exists(PG_USER):
        pytest.skip(f"initdb refuses root: a throw-away PostgreSQL cluster needs a {PG_USER!r} user")
    root = Path(tempfile.mkdtemp(prefix="convlab-pg-"))
    shutil.chown(root, PG_USER) if os.geteuid() == 0 else None
    cluster = Cluster(root)
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.stop()
        cluster.crash()  # a leftover postmaster (e.g. after a failed stop) does not outlive the test
        shutil.rmtree(root, ignore_errors=True)
