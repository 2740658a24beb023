"""A live worker's heartbeat, committing over and over: what SQLite's read-then-write requests must survive."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service.storage.db import make_engine, make_session_factory
from service.worker.leases import register_worker, touch_worker


@contextmanager
def a_worker_committing(database_url: str) -> Iterator[list[int]]:
    """A worker's heartbeat committing over and over on its own connection, as a live worker's does; yields a
    list holding the number of its commits so far, once the first is made. Each commit moves SQLite's snapshot on
    under any reader."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with factory() as session:
        register_worker(session, worker_id="committing", hostname="test", pid=0)
        session.commit()
    commits, stop, beating = [0], threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.is_set():
            with factory() as session:
                touch_worker(session, "committing", current_job_id=None)
                session.commit()
            commits[0] += 1
            beating.set()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    beating.wait(timeout=30)
    try:
        yield commits
    finally:
        stop.set()
        thread.join()
        engine.dispose()
