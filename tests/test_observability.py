"""Metrics, JSON logs and request ids, read from a real `booknlp-api serve` after real jobs (tests/server_process.py).

The job metrics are counted in the worker process and read by the API process's /metrics: these tests
pass only if the multiprocess files carry them across. SQLite only: metrics files and logs do not depend on
the database (the store's gauges on PostgreSQL, and while it is down: tests/test_metrics_outage.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import expected_device
from tests.server_process import Server, has_finished, is_mid_run, running_server

ROOT = Path(__file__).resolve().parents[1]
MARKER = f"Zorblefax{uuid.uuid4().hex[:12]}"
"""A word that appears in a submitted book and must never appear in a log line."""
TEXT = f"“Hello,” said Emma {MARKER}. Harriet smiled at {MARKER} and they walked to Highbury together."
REQUEST_ID = "client-chosen.id-42"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Run:
    server: Server
    job: dict[str, Any]
    result: dict[str, Any]
    cached: dict[str, Any]
    metrics: str


@pytest.fixture(scope="module")
def run(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One server with JSON logs: a job run to the end, the same text again (a cache hit), a job cancelled while
    it runs, one request id sent."""
    data_dir = tmp_path_factory.mktemp("observed") / "data"
    stale = data_dir / "metrics" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"values of a process from an earlier run")
    with running_server(tiny_models_dir, data_dir, BOOKNLP_LOG_FORMAT="json") as server:
        server.start()
        assert not stale.exists()  # serve starts from an empty folder
        job_id = server.submit(TEXT)
        job = server.wait(job_id, has_finished)
        assert job["status"] == "succeeded", job
        result = server.client.get(f"/v1/jobs/{job_id}/result").json()
        response = server.client.post("/v1/jobs", json={"text": TEXT, "cache": True})
        assert response.status_code in (200, 202), response.text
        cached = response.json()
        assert cached["cached"], cached
        server.hold.touch()  # the next job stays mid-stage until it is cancelled
        held = server.submit("A book that is cancelled halfway. Mr. Knightley frowned.")
        server.wait(held, is_mid_run)
        assert server.client.delete(f"/v1/jobs/{held}").status_code in (200, 202)
        assert server.wait(held, has_finished)["status"] == "cancelled"  # the hold lets go of a cancelled run
        server.hold.unlink()
        assert server.client.get(f"/v1/jobs/{job_id}", headers={"X-Request-ID": REQUEST_ID}).status_code == 200
        assert server.client.get(f"/v1/jobs/{'0' * 32}").status_code == 404  # well-formed, unknown
        metrics = httpx.get(f"{server.client.base_url}/metrics", timeout=60)  # no API key: /metrics is open
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        yield Run(server, job, result, cached, metrics.text)


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_job_metrics_come_from_the_worker_process(run: Run) -> None:
    found = samples(run.metrics)
    assert value(found, "booknlp_jobs_submitted_total", model="tiny", cached="false") == 2
    assert value(found, "booknlp_jobs_submitted_total", model="tiny", cached="true") == 1
    assert value(found, "booknlp_jobs_finished_total", status="succeeded", code="") == 2  # the cache hit too
    assert value(found, "booknlp_jobs_finished_total", status="cancelled", code="") == 1
    assert value(found, "booknlp_cache_hits_total") == 1
    assert value(found, "booknlp_tokens_analysed_total", model="tiny") == run.result["token_count"] > 0
    device = run.result["device"]
    assert value(found, "booknlp_job_duration_seconds_count", model="tiny", device=device) == 1
    stages = run.result["timings"]
    assert len(stages) >= 5
    for stage, seconds in stages.items():
        labels = {"stage": stage, "model": "tiny", "device": device}
        assert value(found, "booknlp_stage_duration_seconds_count", **labels) == 1
        assert value(found, "booknlp_stage_duration_seconds_sum", **labels) == pytest.approx(seconds, rel=1e-6)
    gpu = value(found, "booknlp_gpu_memory_bytes", device=expected_device().device)
    assert (gpu == 0) == (expected_device().device == "cpu")


def test_queue_and_workers_are_read_from_the_store(run: Run) -> None:
    found = samples(run.metrics)
    assert value(found, "booknlp_queue_depth") == 0
    assert value(found, "booknlp_queue_oldest_age_seconds") == 0
    assert value(found, "booknlp_jobs_running") == 0
    assert value(found, "booknlp_workers", state="ready") == 1
    assert value(found, "booknlp_workers", state="failed") == 0


def test_http_requests_are_labelled_by_route_template(run: Run) -> None:
    found = samples(run.metrics)
    posts = {dict(pairs)["status"]: count for (name, pairs), count in found.items()
             if name == "booknlp_http_requests_total" and dict(pairs)["route"] == "/v1/jobs"}
    assert sum(posts.values()) == 3 and set(posts) <= {"200", "202"}  # two jobs, and the first text from the cache
    assert sum(count for (name, pairs), count in found.items() if name == "booknlp_http_requests_total"
               and dict(pairs)["method"] == "DELETE" and dict(pairs)["route"] == "/v1/jobs/{job_id}") == 1
    assert value(found, "booknlp_http_requests_total", method="GET", route="/v1/jobs/{job_id}/result",
                 status="200") == 1
    assert value(found, "booknlp_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="404") == 1
    polls = value(found, "booknlp_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="200")
    assert polls >= 2  # the test's polls until the job finished, and the request with an id
    assert value(found, "booknlp_http_request_duration_seconds_count", method="GET", route="/v1/jobs/{job_id}") \
        == polls + 1
    labels = {v for (_, pairs) in found for _, v in pairs}
    assert run.job["id"] not in labels and "no-such-job" not in labels and not any("/v1/jobs/" in v and "{" not in v
                                                                                  for v in labels)


def log_lines(server: Server) -> list[dict[str, Any]]:
    lines = [line for line in server.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return parsed


def test_every_log_line_is_one_json_object_with_its_ids(run: Run) -> None:
    lines = log_lines(run.server)
    assert all(set(line) >= {"time", "level", "logger", "message", "request_id", "job_id", "worker_id"}
               for line in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)
    job_id = run.job["id"]
    worker_lines = [line for line in lines if line["job_id"] == job_id and line["worker_id"]]
    assert any(line["message"].endswith("succeeded") for line in worker_lines), worker_lines
    assert {line["worker_id"] for line in worker_lines} <= {w for line in lines if (w := line["worker_id"])}
    submitted = [line for line in lines if line["job_id"] == job_id and line["request_id"]]
    assert submitted and submitted[0]["logger"] == "booknlp_api.jobs.service"  # the API process's line
    for line in lines:  # every line about a job names it, and every line of a worker process names the worker
        for named in re.findall(r"\bjob ([0-9a-f]{32})\b", line["message"]):
            assert line["job_id"] == named, line
        if line["logger"] == "booknlp_api.jobs.worker":
            assert line["worker_id"], line
    access = [line for line in lines if line["logger"] == "uvicorn.access" and line["request_id"] == REQUEST_ID]
    assert len(access) == 1 and f"/v1/jobs/{job_id}" in access[0]["message"], access


def test_no_log_line_holds_the_books_text(run: Run) -> None:
    text = run.server.log.read_text(encoding="utf-8")
    assert MARKER not in text
    assert "Highbury" not in text


def test_the_request_id_is_echoed_or_made(run: Run) -> None:
    client = run.server.client
    assert client.get("/v1/health", headers={"X-Request-ID": REQUEST_ID}).headers["x-request-id"] == REQUEST_ID
    made = client.get("/v1/jobs/nope").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    forged = client.get("/v1/health", headers={"X-Request-ID": 'x" level=error'}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", forged)  # a header that could break a log line is replaced
    assert client.get("/metrics").headers["x-request-id"]


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/booknlp-api.json").read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    rules = (ROOT / "deploy/prometheus/alerts.yaml").read_text(encoding="utf-8")
    return set(re.findall(r"\bbooknlp_\w+", " ".join(exprs) + rules))


def test_dashboard_and_alerts_name_only_metrics_the_service_exports(run: Run) -> None:
    exported = {s.name for family in text_string_to_metric_families(run.metrics) for s in family.samples}
    named = dashboard_metric_names()
    assert len(named) >= 8
    assert named - exported == set()


def test_a_dead_workers_live_gauge_files_are_removed(run: Run) -> None:
    """The supervisor marks a worker that died: its GPU memory gauge stops counting (mark_process_dead)."""
    server = run.server
    folder = server.data_dir / "metrics"
    (gauge,) = folder.glob("gauge_livesum_*.db")
    pid = int(gauge.stem.rsplit("_", 1)[1])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while gauge.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not gauge.exists()
    assert (folder / f"counter_{pid}.db").exists()  # its counts stay
