"""Load shedding against a live `convlab serve` with the trained model: a flood of concurrent predicts gets
200s and 503s with Retry-After, and nothing else; once the flood is over, the next predict is served.

The bound is tightened (a 1 ms wait, batches of 4) so that a flood this test can make on a small machine is past
it; how long anything takes is not asserted (timings are bench/'s business)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import tests.e2e.conftest as e2e
from service.config import Settings
from tests.api.conftest import png_bytes
from tests.api.test_export import copy_database
from tests.e2e.conftest import free_port, launch, serve_command, serve_env, stop, wait_until_healthy

FLOOD = 256


@pytest.fixture(scope="module")
def url(trained_settings: Settings, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[str]:
    state_dir = tmp_path_factory.mktemp("shedding")
    copy_database(trained_settings, state_dir)
    env = serve_env(
        state_dir, data_dir, CONVLAB_PREDICT_MAX_WAIT_MS="1", CONVLAB_PREDICT_BATCH_MAX_SIZE="4", CONVLAB_AUTH="off"
    )
    port, log = free_port(), state_dir / "serve.log"
    process = launch(serve_command(port, "--workers", "0"), env, log)
    try:
        e2e.STARTUP_SECONDS = max(e2e.STARTUP_SECONDS, 180)
        wait_until_healthy(f"http://127.0.0.1:{port}", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


async def predict_together(url: str, image: bytes, count: int) -> list[httpx.Response]:
    """`count` single-image predicts sent at once, each on its own connection."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        headers = {"content-type": "image/png"}
        return await asyncio.gather(
            *(client.post("/jobs/1/predict", content=image, headers=headers) for _ in range(count))
        )


def test_a_flood_is_answered_with_200s_and_503s_with_retry_after_and_no_other_error(
    url: str, test_images: tuple[np.ndarray, np.ndarray]
) -> None:
    image = png_bytes(test_images[0][0])
    warm = asyncio.run(predict_together(url, image, 16))  # loads the model; overlapping answers set the rate
    assert {r.status_code for r in warm} <= {200, 503}
    flood = asyncio.run(predict_together(url, image, FLOOD))
    statuses = [r.status_code for r in flood]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    shed = [r for r in flood if r.status_code == 503]
    assert shed and statuses.count(200) >= 4  # past the bound some are refused; within it, some are served
    assert all(int(r.headers["Retry-After"]) >= 1 and "overloaded" in r.json()["detail"] for r in shed)
    after = httpx.post(f"{url}/jobs/1/predict", content=image, headers={"content-type": "image/png"}, timeout=60)
    assert after.status_code == 200 and len(after.json()["predictions"]) == 1
