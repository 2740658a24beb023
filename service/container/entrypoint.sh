#!/bin/sh
# The image's entrypoint. Before a `convlab` command on a database server (CONVLAB_DATABASE_URL set and not
# SQLite), wait until the database answers: PostgreSQL may still be starting when the stack comes up, and a
# compose file that both compose v1 and v2 accept cannot make `migrate` wait for a service that only an optional
# profile starts. Then run the command as PID 1 (`exec`), so that `docker stop`'s SIGTERM reaches convlab itself.
set -eu
url="${CONVLAB_DATABASE_URL:-}"
if [ "${1:-}" = convlab ] && [ -n "$url" ] && [ "${url#sqlite}" = "$url" ]; then
    python - <<'PY'
import os
import sys
import time

from sqlalchemy import text

from service.config import get_settings
from service.storage.db import make_engine

deadline = time.monotonic() + float(os.environ.get("DATABASE_WAIT_SECONDS", "120"))
while True:
    engine = make_engine(get_settings().database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        break
    except Exception as exc:  # any failure to connect means: not up yet
        if time.monotonic() > deadline:
            sys.exit(f"convlab: the database did not answer: {exc}")
        print(f"convlab: waiting for the database ({type(exc).__name__})", file=sys.stderr, flush=True)
        time.sleep(2)
    finally:
        engine.dispose()
PY
fi
exec "$@"
