"""A local dataset mirror for tests: python's http.server in a thread over a data directory, counting requests.

A mirror has the data directory's layout (`FashionMNIST/raw/<file>`, `MNIST/raw/<file>`, `airfoil/<file>`), so
serving a data directory as it is makes one; requests are counted by path under the root, e.g.
`MNIST/raw/train-images-idx3-ubyte.gz`.
"""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Mirror:
    url: str
    requests: Counter[str] = field(default_factory=Counter)
    delay_seconds: float = 0.0  # before answering each request: makes downloads overlap in time


class _Handler(SimpleHTTPRequestHandler):
    mirror: Mirror

    def do_GET(self) -> None:
        self.mirror.requests[self.path.lstrip("/")] += 1
        time.sleep(self.mirror.delay_seconds)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_directory(root: Path, *, delay_seconds: float = 0.0) -> Iterator[Mirror]:
    """Serve the files of `root` at http://127.0.0.1:PORT/ until the block ends."""
    mirror = Mirror(url="", delay_seconds=delay_seconds)
    handler = type("Handler", (_Handler,), {"mirror": mirror})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    mirror.url = f"http://127.0.0.1:{server.server_port}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
