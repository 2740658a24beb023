"""The `convlab` command line: serve the API with workers, run a worker, migrate the database, manage tokens.

The client commands (`jobs`, `predict`, `lab`, `datasets`, `models`) are dispatched before anything of the server
is imported, settings included, so that they answer quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from service import __version__
from service.access.principal import Scope
from service.client.commands import COMMANDS, add_client_parsers, join_negative_values, run_client_command

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service.config import Settings

log = logging.getLogger("convlab")
WORKER_STOP_SECONDS = 60.0  # how long `serve` waits for its workers to checkpoint and requeue on exit
# Open event streams never end by themselves while their job runs: a stopping API closes them after this long
# (clients reconnect with Last-Event-ID), instead of waiting for them forever.
REQUESTS_STOP_SECONDS = 5


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per action."""
    parser = argparse.ArgumentParser(prog="convlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"convlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, then run the HTTP API and N worker processes")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="training worker processes (0: the API alone)")
    serve.add_argument(
        "--api-workers",
        type=_positive,
        default=1,
        help="API processes sharing the port, each with its own model cache and batcher (docs/operations.md)",
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-migrate", action="store_true", help="skip the migration at start")

    worker = commands.add_parser("worker", help="migrate, then claim and train jobs until stopped")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.add_argument("--no-migrate", action="store_true", help="skip the migration at start")
    worker.add_argument(
        "--parent-pid", type=int, default=None, help="stop gracefully when this process (e.g. `serve`) is gone"
    )
    worker.add_argument(
        "--devices", default=None, help="one worker pinned to each device: cuda:0,cuda:1 (cpu too), or all GPUs"
    )

    db = commands.add_parser("db", help="database migrations").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations (default: up to head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db.add_parser("downgrade", help="revert migrations (default: down to base, dropping all data)")
    downgrade.add_argument("revision", nargs="?", default="base")
    db.add_parser("current", help="print the database's revision")
    add_data_safety_parsers(db)
    add_token_parser(commands)
    add_client_parsers(commands)
    return parser


def add_data_safety_parsers(db: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `convlab db backup | restore | stats | prune | vacuum` (docs/operations.md)."""
    backup = db.add_parser("backup", help="write a consistent copy of the live database to PATH")
    backup.add_argument("path")
    restore = db.add_parser("restore", help="load a backup into an empty database; running jobs are requeued")
    restore.add_argument("path")
    restore.add_argument("--force", action="store_true", help="replace a database that holds rows")
    stats = db.add_parser("stats", help="sizes by table and the largest jobs")
    stats.add_argument("--top", type=_positive, default=10, help="how many of the largest jobs to list")
    prune = db.add_parser("prune", help="delete finished jobs' checkpoints beyond their keep_checkpoints")
    prune.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    vacuum = db.add_parser("vacuum", help="give the space of deleted rows back to the filesystem")
    vacuum.add_argument("--full", action="store_true", help="PostgreSQL: VACUUM FULL (locks each table)")


def add_token_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `convlab token ...` to the command line."""
    token = commands.add_parser("token", help="API tokens: create, list, set a predict rate, revoke")
    actions = token.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser("create", help="make a token; its secret is printed once, as the last line")
    create.add_argument("name")
    create.add_argument(
        "--scope", action="append", required=True, choices=[s.value for s in Scope], help="repeat for several"
    )
    rate_help = "predict requests per second for this token (0: no limit; default: CONVLAB_PREDICT_RATE)"
    create.add_argument("--predict-rate", type=float, help=rate_help)
    change = actions.add_parser("set", help="change a token's predict rate")
    change.add_argument("name")
    change.add_argument("--predict-rate", type=_rate, required=True, help=rate_help + "; 'default' for the server's")
    actions.add_parser("list", help="list tokens (names, scopes, last use; never a secret)")
    revoke = actions.add_parser("revoke", help="revoke a token: the next request with it is refused")
    revoke.add_argument("name")


def _rate(text: str) -> float | None:
    return None if text == "default" else float(text)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `convlab` console script."""
    args = build_parser().parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    if args.command in COMMANDS:
        return run_client_command(args)  # the thin client: nothing below loads torch or SQLAlchemy for it
    from service.config import get_settings
    from service.telemetry.logs import setup_logging

    settings = get_settings()
    setup_logging(settings.log_format)
    if args.command == "serve":
        return serve(
            settings,
            host=args.host,
            port=args.port,
            workers=args.workers,
            api_workers=args.api_workers,
            log_level=args.log_level,
            migrate=not args.no_migrate,
        )
    if args.command == "worker" and args.devices is not None:
        return pinned_workers(settings, args.devices, burst=args.burst, migrate=not args.no_migrate)
    if args.command == "worker":
        return worker(settings, burst=args.burst, migrate=not args.no_migrate, parent_pid=args.parent_pid)
    if args.command == "token":
        from service.admin import run_token_command

        return run_token_command(settings, args)
    if args.db_command in ("backup", "restore", "stats", "prune", "vacuum"):
        from service.admin import run_db_command

        return run_db_command(settings, args)
    return database(settings, args.db_command, getattr(args, "revision", None))


def database(settings: Settings, command: str, revision: str | None) -> int:
    """Run a `convlab db` sub-command."""
    from service.storage.db import current_revision, downgrade_database, upgrade_database

    if command == "upgrade":
        upgrade_database(settings.database_url, revision or "head")
    elif command == "downgrade":
        downgrade_database(settings.database_url, revision or "base")
    print(current_revision(settings.database_url) or "(empty)")
    return 0


def worker(settings: Settings, *, burst: bool = False, migrate: bool = True, parent_pid: int | None = None) -> int:
    """Run one worker in this process; SIGTERM/SIGINT stop it at the next batch boundary, requeueing its job."""
    from service.launcher import watch_parent
    from service.storage.db import upgrade_database
    from service.worker import run_worker

    if migrate:
        upgrade_database(settings.database_url)
    shutdown = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        if shutdown.is_set():
            raise KeyboardInterrupt  # a second signal: give up on the graceful stop
        log.info("signal %s: stopping at the next batch boundary", signal.Signals(signum).name)
        shutdown.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if parent_pid is not None:
        threading.Thread(target=watch_parent, args=(parent_pid, shutdown), daemon=True).start()
    run_worker(settings, shutdown=shutdown, burst=burst)
    return 0


def pinned_workers(settings: Settings, devices: str, *, burst: bool, migrate: bool) -> int:
    """Migrate, then run one worker process per device of `devices` (service/launcher.py)."""
    from service.errors import InvalidInput
    from service.launcher import parse_devices, run_pinned_workers
    from service.storage.db import upgrade_database

    try:
        names = parse_devices(devices)
    except InvalidInput as exc:
        print(f"convlab worker: {exc.detail}", file=sys.stderr)
        return 2
    if migrate:
        upgrade_database(settings.database_url)
    return run_pinned_workers(names, burst=burst)


class _Stopped(Exception):
    """SIGTERM/SIGINT reached `serve` (uvicorn re-raises the signal after its graceful shutdown)."""


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    api_workers: int = 1,
    migrate: bool = True,
) -> int:
    """Migrate, start `workers` worker processes, run the API (`api_workers` processes) until it stops, then stop
    the workers. Migration and the bootstrap admin token happen here, once, before any API process starts."""
    from service.admin import bootstrap_admin
    from service.launcher import start_worker_process, stop_worker_processes
    from service.storage.db import upgrade_database

    settings = settings.model_copy(update={"bind_host": host})  # CONVLAB_AUTH=auto decides by this address
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_stopped)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if migrate:
            upgrade_database(settings.database_url)
        if settings.auth_required:
            bootstrap_admin(settings)
        processes.extend(start_worker_process() for _ in range(workers))
        access = "required" if settings.auth_required else "off"
        started = f"{api_workers} API process(es), {workers} worker(s), authentication {access}"
        log.info("convlab %s: API docs at http://%s:%d/docs, %s", __version__, host, port, started)
        if api_workers == 1:
            run_api(settings, host=host, port=port, log_level=log_level)
        else:
            run_api_processes(settings, host=host, port=port, log_level=log_level, count=api_workers)
    except _Stopped as stopped:
        log.info("%s: stopping", stopped)
    finally:
        stop_worker_processes(processes, timeout=WORKER_STOP_SECONDS)
    return 0


def run_api(settings: Settings, *, host: str, port: int, log_level: str) -> None:
    """The API in this process."""
    import uvicorn

    from service.main import create_app

    # log_config=None: uvicorn's loggers (access log included) go through convlab's handler and format
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        timeout_graceful_shutdown=REQUESTS_STOP_SECONDS,
    )


def run_api_processes(settings: Settings, *, host: str, port: int, log_level: str, count: int) -> None:
    """`count` API processes on one socket (uvicorn's supervisor: it restarts one that dies, and on SIGTERM or
    SIGINT stops them all gracefully and returns). Each is a fresh interpreter that builds its app with
    `api_app` from the environment, which is therefore set up for it first (`api_process_environment`)."""
    import uvicorn

    with prometheus_directory() as metrics_dir:
        os.environ.update(api_process_environment(settings, count=count, metrics_dir=metrics_dir))
        uvicorn.run(
            "service.cli:api_app",
            factory=True,
            workers=count,
            host=host,
            port=port,
            log_level=log_level,
            log_config=None,
            timeout_graceful_shutdown=REQUESTS_STOP_SECONDS,
        )


def api_process_environment(settings: Settings, *, count: int, metrics_dir: str) -> dict[str, str]:
    """What `count` API processes read besides the operator's own settings.

    The bind address (CONVLAB_AUTH=auto decides by it); no migration (done once, above, or skipped on purpose);
    prometheus_client's multiprocess directory, so that /metrics counts every process's requests; and the
    machine's CPUs shared out: lab computation slots and (unless configured) torch threads per process.
    """
    cpus = os.cpu_count() or 1
    slots = settings.access.lab_concurrency or cpus
    env = {
        "CONVLAB_BIND_HOST": settings.bind_host or "",
        "CONVLAB_MIGRATE_ON_START": "false",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "CONVLAB_LAB_CONCURRENCY": str(max(1, slots // count)),
    }
    if not settings.serving.inference_threads:
        env["CONVLAB_INFERENCE_THREADS"] = str(max(1, cpus // count))
    return env


@contextmanager
def prometheus_directory() -> Iterator[str]:
    """An empty directory for prometheus_client's per-process metric files, removed afterwards."""
    path = tempfile.mkdtemp(prefix="convlab-metrics-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def api_app() -> FastAPI:
    """The app of one of several API processes (`uvicorn service.cli:api_app --factory`), set by the environment."""
    from service.config import get_settings
    from service.main import create_app
    from service.telemetry.logs import setup_logging

    settings = get_settings()
    setup_logging(settings.log_format)
    return create_app(settings)


if __name__ == "__main__":
    sys.exit(main())
