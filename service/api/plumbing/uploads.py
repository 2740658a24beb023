"""Uploaded archives: the request body streamed to a temporary file while it is hashed and counted.

The body never sits whole in memory: each chunk of `request.stream()` goes to a file in `<state_dir>/uploads`,
which is removed when the request ends, however it ends (ingested, refused, cut off). A process killed mid-upload
leaves its file behind; `clear_uploads` removes such files when the API starts.
"""

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.requests import ClientDisconnect

from service.errors import BadRequest, PayloadTooLarge


@dataclass(frozen=True)
class Upload:
    """A received body: where it lies, how long it is, its sha256."""

    path: Path
    size: int
    sha256: str


def uploads_dir(state_dir: Path) -> Path:
    """Where bodies being received are kept."""
    return Path(state_dir) / "uploads"


def clear_uploads(state_dir: Path) -> int:
    """Remove what uploads cut off by a killed process left behind; return how many files."""
    folder = uploads_dir(state_dir)
    removed = 0
    for leftover in folder.glob("upload-*") if folder.is_dir() else []:
        with suppress(FileNotFoundError):
            leftover.unlink()
            removed += 1
    return removed


@asynccontextmanager
async def received_body(request: Request, state_dir: Path, *, max_bytes: int) -> AsyncIterator[Upload]:
    """The request body in a temporary file, deleted on exit; 413 past `max_bytes`, 400 when the client leaves."""
    folder = uploads_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="upload-", dir=folder)
    path = Path(name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(handle, "wb") as out:
            try:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(
                            f"upload larger than the limit of {max_bytes} bytes (CONVLAB_DATASET_MAX_UPLOAD_BYTES)"
                        )
                    digest.update(chunk)
                    out.write(chunk)
            except ClientDisconnect:
                raise BadRequest("the upload was cut off before its end") from None
        if size == 0:
            raise BadRequest("the request body is empty: send the archive's bytes as the body")
        yield Upload(path, size, digest.hexdigest())
    finally:
        path.unlink(missing_ok=True)
