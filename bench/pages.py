"""What each dashboard page ships: its HTML plus every script and stylesheet it links, raw and gzipped.

    .venv/bin/python bench/pages.py

Renders the pages in-process (auth off, one queued job on a temporary database) and follows their <script src>
and <link rel=stylesheet> references; data the scripts fetch later (history, lab results) is not counted.
"""

import gzip
import io
import re
import sys
import tempfile
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import AccessSettings, AuthMode, Settings
from service.main import create_app

PAGES = ["/", "/ui/jobs/new", "/ui/jobs/1", "/ui/compare?jobs=1", "/ui/lab", "/ui/architectures", "/ui/signin"]
PAGES += ["/ui/datasets", "/ui/datasets/shades/versions/1", "/ui/models", "/ui/models/m"]
ASSET = re.compile(r'<(?:script[^>]*src|link[^>]*rel="stylesheet"[^>]*href)="([^"]+)"')


def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), access=AccessSettings(auth=AuthMode.off))
        with TestClient(create_app(settings)) as client:
            created = client.post("/jobs", json={"architecture": "bn_lenet", "dataset": "synthetic", "epochs": 1})
            assert created.status_code == 201, created.text
            _add_dataset_and_model(client)
            print(f"{'page':<34}{'files':>6}{'bytes':>10}{'gzipped':>10}")
            for path in PAGES:
                html = client.get(path, headers={"Accept": "text/html"}).content
                bodies = [html] + [client.get(url).content for url in ASSET.findall(html.decode())]
                raw = sum(len(b) for b in bodies)
                packed = sum(len(gzip.compress(b)) for b in bodies)
                print(f"{path:<34}{len(bodies):>6}{raw:>10,}{packed:>10,}")


def _add_dataset_and_model(client: TestClient) -> None:
    """An uploaded dataset (two classes of three grey squares) and a model without versions."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as packed:
        for label, shade in (("dark", 40), ("light", 220)):
            for i in range(3):
                image = io.BytesIO()
                Image.new("L", (28, 28), color=shade + i).save(image, format="PNG")
                packed.writestr(f"{label}/{i}.png", image.getvalue())
    stored = client.post("/datasets", params={"name": "shades"}, content=archive.getvalue())
    assert stored.status_code == 201, stored.text
    assert client.post("/models", json={"name": "m"}).status_code == 201


if __name__ == "__main__":
    main()
