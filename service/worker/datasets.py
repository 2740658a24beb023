"""What a job starts from besides its spec: an uploaded dataset's file on this worker (fetched from the database
once, cached by its hash, checked each use), and a fine-tuned job's source checkpoint (checked against its hash).

The cache lives in `<state_dir>/dataset-cache/<sha256 of the file>.safetensors`; a copy whose bytes no longer hash
to its name (a damaged disk, a half-written file from a killed worker) is fetched again.
"""

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.errors import CheckpointError, DatasetUnavailable
from service.jobspec.spec import JobSpec, is_uploaded
from service.storage.datasets import get_version, pin
from service.storage.jobs import get_checkpoint

CHUNK = 1 << 20


def cache_dir(settings: Settings) -> Path:
    """Where this worker keeps uploaded datasets' files."""
    return Path(settings.state_dir) / "dataset-cache"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".fetching-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def dataset_file(factory: sessionmaker[Session], spec: JobSpec, folder: Path) -> Path | None:
    """The checked local file of `spec`'s uploaded dataset (None for a built-in one), fetched when missing."""
    if not is_uploaded(spec.dataset):
        return None
    with factory() as session:
        row = pin(session, spec.dataset)
        expected = row.data_sha256
        path = folder / f"{expected}.safetensors"
        if path.is_file() and file_sha256(path) == expected:
            return path
        data = get_version(session, row.name, row.version, with_data=True).data
    if hashlib.sha256(data).hexdigest() != expected:
        raise DatasetUnavailable(f"dataset {spec.dataset}: the stored bytes do not match their sha256 {expected}")
    _write_atomically(path, data)
    return path


def init_weights(factory: sessionmaker[Session], spec: JobSpec) -> bytes | None:
    """The bytes of the checkpoint a fine-tuned `spec` starts from (None without `init_from`), as admitted."""
    source = spec.init_from
    if source is None:
        return None
    epoch = source.epoch if isinstance(source.epoch, int) else None
    with factory() as session:
        checkpoint = get_checkpoint(session, source.job, epoch=epoch)
        data, sha256 = checkpoint.data, checkpoint.sha256
    if source.checkpoint_sha256 is not None and sha256 != source.checkpoint_sha256:
        raise CheckpointError(
            f"init_from: job {source.job}'s checkpoint is no longer the one admitted (sha256 {sha256})"
        )
    return data
