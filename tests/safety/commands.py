"""`convlab db ...` run as an operator runs it: a separate process, its database named by the environment."""

import os
import subprocess
import sys
from pathlib import Path


def convlab_db(
    url: str, state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `convlab db ARGS` on the database at `url` (with settings `env`); its exit status, stdout and stderr."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONVLAB_")}
    environment.update(CONVLAB_DATABASE_URL=url, CONVLAB_STATE_DIR=str(state_dir), **(env or {}))
    command = [sys.executable, "-m", "service.cli", "db", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
