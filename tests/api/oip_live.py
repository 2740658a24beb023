"""A live `convlab serve --api-workers 2` (auth required) on a copy of the trained job's database, with model
`fashion`: v1 is the job's epoch-1 checkpoint, v2 its epoch-2 one; and what each version computes itself."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from sqlalchemy.orm import Session

import tests.e2e.conftest as e2e
from service.access import Scope
from service.config import Settings
from service.inference.images import prepare_batch
from service.storage import jobs, tokens
from service.storage.db import make_engine, make_session_factory, upgrade_database
from service.training import load_checkpoint
from service.training.datasets import load_dataset
from tests.api.test_export import copy_database
from tests.e2e.conftest import free_port, launch, serve_command, serve_env, stop, wait_until_healthy

IMAGES = 200
STARTUP_SECONDS = 180  # two API processes importing torch on a loaded 2-core machine may take over a minute


@dataclass(frozen=True)
class Live:
    url: str
    headers: dict[str, dict[str, str]]  # token name -> Authorization header
    images: np.ndarray  # uint8 [N, 1, 28, 28], real Fashion-MNIST test images
    logits: dict[int, torch.Tensor]  # version -> the torch model's logits on `images`, prepared as predict does
    normalized: np.ndarray  # float32 [N, 1, 28, 28]: `images` as predict prepares them (the models' input)


def _issue(session: Session, name: str, *scopes: Scope) -> dict[str, str]:
    _, secret = tokens.create_token(session, name=name, scopes=scopes)
    return {"Authorization": f"Bearer {secret}"}


def _reference_logits(session: Session, images: np.ndarray) -> tuple[dict[int, torch.Tensor], np.ndarray]:
    """Each epoch's checkpoint run by torch on the images, through predict's own preparation; that batch."""
    out, batch = {}, torch.empty(0)
    for epoch in (1, 2):
        loaded = load_checkpoint(jobs.get_checkpoint(session, 1, epoch=epoch).data)
        batch = prepare_batch(loaded, [torch.from_numpy(image) for image in images])
        with torch.inference_mode():
            out[epoch] = loaded.model.eval()(batch).float()
    return out, batch.numpy()


def _prepare(state_dir: Path, images: np.ndarray) -> tuple[dict[str, dict[str, str]], Any]:
    url = f"sqlite:///{state_dir / 'convlab.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            headers = {
                "admin": _issue(session, "admin", Scope.admin),
                "mover-a": _issue(session, "mover-a", Scope.models_write),
                "mover-b": _issue(session, "mover-b", Scope.models_write),
                "client": _issue(session, "client", Scope.predict),
            }
            session.commit()
            return headers, _reference_logits(session, images)
    finally:
        engine.dispose()


@contextlib.contextmanager
def live_server(trained_settings: Settings, state_dir: Path, data_dir: Path) -> Iterator[Live]:
    """The server, started on a copy of `trained_settings`' database in `state_dir`, with v1 and v2 registered."""
    copy_database(trained_settings, state_dir)
    images = load_dataset("fashion_mnist", data_dir, train_subset=1, test_subset=IMAGES).test.images.numpy()
    headers, (logits, normalized) = _prepare(state_dir, images)
    port, log = free_port(), state_dir / "serve.log"
    env = serve_env(state_dir, data_dir, CONVLAB_AUTH="required", CONVLAB_PREDICT_RATE="0")
    process = launch(serve_command(port, "--workers", "0", "--api-workers", "2"), env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        e2e.STARTUP_SECONDS = max(e2e.STARTUP_SECONDS, STARTUP_SECONDS)
        wait_until_healthy(url, process, log)
        admin = headers["admin"]
        assert httpx.post(f"{url}/models", json={"name": "fashion"}, headers=admin).status_code == 201
        for epoch in (1, 2):
            body = {"job_id": 1, "epoch": epoch}
            response = httpx.post(f"{url}/models/fashion/versions", json=body, headers=admin, timeout=300)
            assert response.json()["version"] == epoch
        yield Live(url, headers, images, logits, normalized)
    finally:
        stop(process)
