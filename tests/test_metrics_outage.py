"""``/metrics`` while the job database is down: still 200 with the process metrics and ``booknlp_database_up 0``,
without the store's gauges; and back to the full set by itself once the database is.

The outage is a real PostgreSQL stopped as by a crash (``pg_ctl stop -m immediate``: its own server, as in
tests/test_jobs_cluster.py) and started again; a read that hangs is a store read made to block.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import booknlp_api.api.metrics as api_metrics
from booknlp_api.api.metrics import JobStoreCollector, StoreGauges
from booknlp_api.config import Settings
from tests.conftest import AUTH, keys_file
from tests.postgres import PostgresServer

STORE_GAUGES = {"booknlp_queue_depth", "booknlp_queue_oldest_age_seconds", "booknlp_jobs_running", "booknlp_workers"}


def _scrape(client: TestClient) -> dict[str, float]:
    """Every sample's value by name (labelled samples summed): the scrape must answer 200."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


@pytest.fixture
def database() -> Iterator[PostgresServer]:
    server = PostgresServer()  # its own server: the test stops and starts it
    server.start()
    try:
        yield server
    finally:
        server.remove()


def test_metrics_answer_while_postgresql_is_down_and_recover_by_themselves(
        tiny_models_dir: Path, tmp_path: Path, database: PostgresServer) -> None:
    from booknlp_api.api.app import create_app

    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path, workers=0,
                        database_url=database.new_database(), api_keys_file=keys_file(tmp_path))
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=AUTH) as client:
        job = client.post("/v1/jobs", json={"text": "Marley was dead.", "pipeline": ["supersense"]})
        assert job.status_code == 202, job.text  # no worker: it stays queued
        up = _scrape(client)
        assert (up["booknlp_database_up"], up["booknlp_queue_depth"]) == (1, 1)

        database.stop("immediate")
        try:
            down = _scrape(client)
            assert down["booknlp_database_up"] == 0
            assert STORE_GAUGES.isdisjoint(down)  # no stale or zero queue depth for an autoscaler to act on
            assert down["booknlp_http_requests_total"] >= 2  # this process's own metrics are all there
            refused = client.get(f"/v1/jobs/{job.json()['id']}")
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "database_unavailable"
        finally:
            database.start()

        deadline = time.monotonic() + 60
        while (back := _scrape(client))["booknlp_database_up"] == 0:
            assert time.monotonic() < deadline, "the metrics never saw the database again"
            time.sleep(0.2)
        assert back["booknlp_queue_depth"] == 1  # the queued job survived the crash


def test_a_store_read_that_hangs_reports_the_database_down_without_starting_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release, calls = threading.Event(), []

    def hanging_read(jobs: object) -> StoreGauges:
        calls.append(jobs)
        assert release.wait(60)
        return StoreGauges(queued=2, oldest=None, running=1, worker_states=["ready"])

    monkeypatch.setattr(api_metrics, "read_gauges", hanging_read)
    monkeypatch.setattr(api_metrics, "STORE_READ_SECONDS", 0.1)
    app = SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(jobs="the job service")))
    collector = JobStoreCollector(app)  # type: ignore[arg-type]

    def collected() -> dict[str, float]:
        return {sample.name: sample.value for family in collector.collect() for sample in family.samples
                if not sample.labels}

    try:
        assert collected() == {"booknlp_database_up": 0}
        assert collected() == {"booknlp_database_up": 0}
        assert len(calls) == 1  # the second scrape did not pile another read on the hung one
    finally:
        release.set()
    deadline = time.monotonic() + 60
    while (found := collected())["booknlp_database_up"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert found == {"booknlp_database_up": 1, "booknlp_queue_depth": 2, "booknlp_queue_oldest_age_seconds": 0,
                     "booknlp_jobs_running": 1}
