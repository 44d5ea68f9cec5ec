"""``GET /v1/jobs/{id}/events`` against a real server: progress from the worker process arrives as Server-Sent
Events, in order, and the stream ends with the finished job; other keys get the usual 404. On both databases:
the progress the worker process writes reaches the stream through the job store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.corpus import text_path
from tests.conftest import BACKENDS, backend_setting, server_sent_events
from tests.server_process import Server, running_server

BOOK = text_path("pride_and_prejudice.txt").read_text(encoding="utf-8")[20_000:60_000]
"""Long enough (~9K tokens) that the job runs for seconds after the hold is lifted: the stream sees it move."""


@pytest.fixture(scope="module", params=BACKENDS)
def server(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[Server]:
    database = backend_setting(request)
    settings = {} if database is None else {"BOOKNLP_DATABASE_URL": database}
    with running_server(tiny_models_dir, tmp_path_factory.mktemp("events") / "data", **settings) as server:
        server.start()
        yield server


def _events(server: Server, job_id: str, release: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every event of the job's stream; ``release`` (a hold file) is removed once the first event has come."""
    with server.client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(300)) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return server_sent_events(response.iter_lines(),
                                  None if release is None else lambda: release.unlink(missing_ok=True))


def test_a_running_job_streams_its_progress_and_ends_with_the_finished_job(server: Server) -> None:
    server.hold.touch()  # the job waits before its first BERT batch until the stream has begun
    try:
        job_id = server.submit(BOOK)
        server.wait(job_id, lambda job: job["status"] == "running")
        events = _events(server, job_id, release=server.hold)
    finally:
        server.hold.unlink(missing_ok=True)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "end" and kinds.count("end") == 1, kinds
    assert "progress" in kinds
    fractions = [job["progress"]["fraction"] for _, job in events if job["progress"] is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = [job["progress"]["stage"] for _, job in events if job["progress"] is not None]
    assert len(set(stages)) >= 2  # the stages are followed as the worker goes through them
    assert events[-1][1]["status"] == "succeeded" and events[-1][1]["id"] == job_id


def test_a_finished_job_streams_one_end_event_and_closes(server: Server) -> None:
    job_id = server.submit("Elizabeth laughed.", pipeline=["entity"])
    server.wait(job_id, lambda job: job["status"] == "succeeded")
    assert [(kind, job["status"]) for kind, job in _events(server, job_id)] == [("end", "succeeded")]


def test_events_need_the_key_that_owns_the_job(server: Server) -> None:
    job_id = server.submit("Elizabeth laughed.", pipeline=["entity"])
    url = f"{server.client.base_url}/v1/jobs/{job_id}/events"
    assert httpx.get(url).status_code == 401
    stranger = httpx.get(url, headers={"Authorization": "Bearer bnlp_nobodys-key"})
    assert stranger.status_code == 401 and stranger.json()["error"]["code"]
    missing = server.client.get(f"/v1/jobs/{'0' * 32}/events")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
