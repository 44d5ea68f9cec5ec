"""Fixtures shared by test modules."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from booknlp_api.config import Settings
from booknlp_api.device import DeviceInfo, describe_device, resolve_device
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.files import Body
from booknlp_api.jobs.store import JobStore
from booknlp_api.jobs.tables import jobs
from tests.postgres import PostgresServer

SEAMS = Path(__file__).with_name("seams")
READY_SECONDS = 600
"""How long a worker process may take to load the tiny models: seconds when idle, minutes on a shared machine."""


def hold_seam_env(hold: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) for a process that, with its children, waits before each BERT batch while
    ``hold`` exists (tests/seams/sitecustomize.py): a job stays mid-stage until the test has acted."""
    env = dict(os.environ if env is None else env)
    path = [str(SEAMS), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(path), "HOLD_BATCHES_FILE": str(hold)}


def server_sent_events(lines: Iterable[str], on_event: Callable[[], None] | None = None,
                       ) -> list[tuple[str, dict[str, Any]]]:
    """Each event of a stream as (kind, its JSON data); ``on_event`` is called after each one."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[len("data: "):])))
            if on_event is not None:
                on_event()
    return events


def expected_device() -> DeviceInfo:
    """The device ``booknlp_api.device`` picks here for the configured BOOKNLP_DEVICE (auto: a GPU if present),
    so that tests hold on a CPU-only machine and on a GPU host alike."""
    return describe_device(resolve_device(Settings().device))


def assert_reported_device(reported: dict[str, object]) -> None:
    """A /v1/ready ``device`` object matches this machine (allocated memory varies, so only its presence)."""
    want = expected_device()
    stable = ("device", "cuda_available", "cuda_device_name", "cuda_memory_total_bytes")
    assert {key: reported[key] for key in stable} == {key: getattr(want, key) for key in stable}
    assert (reported["cuda_memory_allocated_bytes"] is None) == (want.device == "cpu")


TEST_KEY = "bnlp_the-test-suites-own-key"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
"""The suite talks to the service as a deployment would, with auth on; tests about auth make their own keys."""


def keys_file(folder: Path) -> Path:
    """A keys file (as a deployment mounts one) with the suite's key, with limits no test of other things reaches."""
    path = folder / "api-keys"
    path.write_text(f"tests {TEST_KEY} rate_limit=100000/minute max_active_jobs=100000 max_chars_per_day=10000000000\n",
                    encoding="utf-8")
    return path


def set_job(store: JobStore, job_id: str, **values: object) -> None:
    """Change a job's record behind the service's back (an expiry in the past, say), on either database."""
    with store.database.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (each test takes its own database on it)."""
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


BACKENDS = ["sqlite", "postgresql"]
"""The job databases every job-layer test runs on: ``params`` of a fixture, as ``database_url`` has them."""


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty job database of each kind: the job tests run against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


def backend_setting(request: pytest.FixtureRequest) -> str | None:
    """``BOOKNLP_DATABASE_URL`` for a fixture parametrized over ``BACKENDS`` (a module's server or app, say):
    unset for SQLite, a fresh database on the session's PostgreSQL server otherwise."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


def database_setting(database_url: str) -> str | None:
    """``BOOKNLP_DATABASE_URL`` for a ``database_url``: unset for SQLite, which lives in the data folder."""
    return None if database_url.startswith("sqlite") else database_url


def body_bytes(body: Body | None) -> bytes:
    """A result's bytes, whether served from a file, from memory or streamed from the database."""
    assert body is not None
    return body.read_bytes() if isinstance(body, Path) else body if isinstance(body, bytes) else b"".join(body)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding ``tiny/``: seeded random-weight models, built once per test session."""
    from booknlp_api.models.synthesize import synthesize

    models_dir = tmp_path_factory.mktemp("models")
    synthesize("tiny", models_dir)
    return models_dir


@pytest.fixture(scope="session")
def api_client(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The HTTP app on the tiny models, started once (models loaded) and shared by the API tests.

    No result cache: these tests are about analyses, and some make the engine fail on purpose.
    """
    from booknlp_api.api.app import create_app

    data_dir = tmp_path_factory.mktemp("api-data")
    settings = Settings(models_dir=tiny_models_dir, model="tiny", max_analyze_chars=50_000, max_job_bytes=400_000,
                        max_queued_jobs=2, data_dir=data_dir, result_cache=False, api_keys_file=keys_file(data_dir))
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=AUTH) as client:
        wait_until_ready(client)
        yield client


def wait_until_ready(client: TestClient, timeout: float = READY_SECONDS) -> None:
    """Until /v1/ready is 200: the app's worker process has started and loaded the models."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/v1/ready")
        if response.status_code == 200:
            return
        assert response.json()["error"]["code"] == "not_ready", response.text
        time.sleep(0.1)
    pytest.fail("the worker process did not become ready in time")


@pytest.fixture(scope="session")
def tiny_service(tiny_models_dir: Path) -> NLPService:
    """One engine on the tiny models, shared by engine and parity tests (models load once)."""
    from booknlp_api.engine.service import NLPService

    return NLPService(Settings(models_dir=tiny_models_dir, model="tiny"))


@pytest.fixture(scope="session")
def raw_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny models straight from random initialisation (not calibrated), folder name ``raw``."""
    from booknlp_api.models.synthesize import synthesize

    models_dir = tmp_path_factory.mktemp("raw-models")
    synthesize("tiny", models_dir, name="raw", calibrated=False)
    return models_dir
