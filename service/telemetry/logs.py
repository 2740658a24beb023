"""Structured logs: one JSON object per line (CONVLAB_LOG_FORMAT=json) or readable text, each line carrying the
request id of the HTTP request, or the job id and attempt of the training, it belongs to."""

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["json", "text"]
request_id: ContextVar[str | None] = ContextVar("convlab_request_id", default=None)
job_attempt: ContextVar[tuple[int, int] | None] = ContextVar("convlab_job_attempt", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"


class ContextFilter(logging.Filter):
    """Adds `request_id`, `job_id` and `attempt` (or None) to every record, and `context` for the text format."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid, job = request_id.get(), job_attempt.get()
        job_id, attempt = job if job is not None else (None, None)
        parts = [f"request={rid}"] if rid else []
        if job is not None:
            parts.append(f"job={job_id} attempt={attempt}")
        context = f" [{' '.join(parts)}]" if parts else ""
        record.__dict__.update(request_id=rid, job_id=job_id, attempt=attempt, context=context)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the context ids that are set, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id", "attempt"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(log_format: LogFormat = "text", level: str | int = logging.INFO) -> None:
    """Send every logger's records (uvicorn's and alembic's too) to standard error in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Python warnings (torch's FutureWarnings) become log lines in the same format


@contextmanager
def job_context(job_id: int, attempt: int) -> Iterator[None]:
    """Within the block, log lines carry `job_id` and `attempt`."""
    token = job_attempt.set((job_id, attempt))
    try:
        yield
    finally:
        job_attempt.reset(token)
