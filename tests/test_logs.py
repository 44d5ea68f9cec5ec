"""Log formats, request ids on error responses, and HTTP metrics of a route that fails (in-process app, no worker).

The same behaviour through a real server and its worker processes: tests/test_observability.py.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from booknlp_api.api.app import create_app
from booknlp_api.config import Settings
from booknlp_api.logs import ContextFilter, JsonFormatter, TextFormatter, job_context, request_id, set_worker_id


def _record(message: str, exc: bool = False, **extra: str) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    record = logging.LogRecord("booknlp_api.jobs.worker", logging.WARNING, __file__, 1, message, (), info)
    record.__dict__.update(extra)
    ContextFilter().filter(record)
    return record


def test_a_json_line_carries_the_context_ids_and_the_traceback() -> None:
    token = request_id.set("req-1")
    set_worker_id("host:1:abc")
    try:
        with job_context("job-9"):
            line = json.loads(JsonFormatter().format(_record("job job-9: failed", exc=True)))
    finally:
        request_id.reset(token)
        set_worker_id(None)
    assert line["level"] == "warning" and line["logger"] == "booknlp_api.jobs.worker"
    assert (line["request_id"], line["job_id"], line["worker_id"]) == ("req-1", "job-9", "host:1:abc")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "ValueError: boom" in line["exception"]


def test_ids_given_with_extra_win_and_text_lines_name_them() -> None:
    with job_context("outer"):
        record = _record("job inner: re-queued", job_id="inner")
    assert record.job_id == "inner"  # type: ignore[attr-defined]
    text = TextFormatter().format(record)
    assert text.endswith("job inner: re-queued [job=inner]")
    assert TextFormatter().format(_record("plain")).endswith("plain")


def test_a_500_carries_the_request_id_and_is_counted_under_its_route(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", workers=0, preload=False,
                        auth="disabled")
    app = create_app(settings)

    async def broken(item_id: str) -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/broken/{item_id}", broken, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/broken/123", headers={"X-Request-ID": "trace-500"})
        assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
        assert response.headers["x-request-id"] == "trace-500"
        scraped = client.get("/metrics").text
    counts = {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(scraped)
              for s in family.samples if s.name == "booknlp_http_requests_total"}
    assert counts[(("method", "GET"), ("route", "/v1/broken/{item_id}"), ("status", "500"))] >= 1


def test_a_command_that_opens_the_job_database_logs_no_alembic_plugin_chatter(tmp_path: Path) -> None:
    env = {**os.environ, "BOOKNLP_DATA_DIR": str(tmp_path), "BOOKNLP_LOG_LEVEL": "info"}
    done = subprocess.run([sys.executable, "-m", "booknlp_api.cli", "keys", "list"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "Running upgrade" in done.stderr  # the new database's migrations still show at INFO ...
    assert "setup plugin" not in done.stderr  # ... alembic's plugin list does not
    assert "Pool disposed" not in done.stderr and "Pool recreating" not in done.stderr  # nor our pool class
