"""Log lines of the API and worker processes: text for a terminal, or one JSON object per line.

Every line says which HTTP request (``request_id``), job (``job_id``) and worker process
(``worker_id``) it belongs to, when it belongs to one: the request and job are context variables
(set by the API's request-id middleware and by the worker around each job), the worker id is one per
process. Uvicorn's access and error logs go through the same handler. A book's text is never logged:
log calls name jobs by id and texts by their length only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

LogFormat = Literal["json", "text"]
CONTEXT_FIELDS = ("request_id", "job_id", "worker_id")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
_worker_id: str | None = None
"""One per worker process; threads started before it is set see it too, unlike a context variable."""


def set_worker_id(worker: str | None) -> None:
    global _worker_id
    _worker_id = worker


@contextmanager
def job_context(job: str) -> Iterator[None]:
    """Every line logged inside (in this thread) names ``job``."""
    token = job_id.set(job)
    try:
        yield
    finally:
        job_id.reset(token)


class ContextFilter(logging.Filter):
    """Adds request, job and worker ids to each record; ids given with ``extra=`` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (("request_id", request_id.get()), ("job_id", job_id.get()), ("worker_id", _worker_id)):
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the ids, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _iso_time(record.created), "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage()}
        line.update({name: getattr(record, name, None) for name in CONTEXT_FIELDS})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The familiar one-line text, with whichever ids the line has at its end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{name.removesuffix('_id')}={value}" for name in CONTEXT_FIELDS
                       if (value := getattr(record, name, None)) is not None)
        text = super().format(record)
        return f"{text} [{ids}]" if ids else text


def _iso_time(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def configure_logging(level: str, log_format: LogFormat) -> None:
    """One handler on the root logger (standard error) for this process; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # alembic names each of its plugins at INFO when a process first opens the job database: seven lines of
    # noise at every start. Migrations actually applied are still logged (alembic.runtime.migration).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
