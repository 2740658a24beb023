"""What each dashboard page ships: its HTML plus every script and stylesheet it links, raw and gzipped.

    .venv/bin/python bench/pages.py

Renders the pages in-process (auth off, one queued job on a temporary database) and follows their <script src>
and <link rel=stylesheet> references; data the scripts fetch later (history, lab results) is not counted.
"""

import gzip
import re
import sys
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import AccessSettings, AuthMode, Settings
from service.main import create_app

PAGES = ["/", "/ui/jobs/new", "/ui/jobs/1", "/ui/compare?jobs=1", "/ui/lab", "/ui/architectures", "/ui/signin"]
ASSET = re.compile(r'<(?:script[^>]*src|link[^>]*rel="stylesheet"[^>]*href)="([^"]+)"')


def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), access=AccessSettings(auth=AuthMode.off))
        with TestClient(create_app(settings)) as client:
            created = client.post("/jobs", json={"architecture": "bn_lenet", "dataset": "synthetic", "epochs": 1})
            assert created.status_code == 201, created.text
            print(f"{'page':<22}{'files':>6}{'bytes':>10}{'gzipped':>10}")
            for path in PAGES:
                html = client.get(path, headers={"Accept": "text/html"}).content
                bodies = [html] + [client.get(url).content for url in ASSET.findall(html.decode())]
                raw = sum(len(b) for b in bodies)
                packed = sum(len(gzip.compress(b)) for b in bodies)
                print(f"{path:<22}{len(bodies):>6}{raw:>10,}{packed:>10,}")


if __name__ == "__main__":
    main()
