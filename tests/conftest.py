"""Fixtures shared by test modules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from booknlp_api.config import Settings
from booknlp_api.device import DeviceInfo, describe_device, resolve_device
from booknlp_api.engine.service import NLPService

TEST_KEY = "bnlp_the-test-suites-own-key"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
"""The suite talks to the service as a deployment would, with auth on; tests about auth make their own keys."""


def expected_device() -> DeviceInfo:
    """The device ``booknlp_api.device`` picks here for the configured BOOKNLP_DEVICE (auto: a GPU if present),
    so that tests hold on a CPU-only machine and on a GPU host alike."""
    return describe_device(resolve_device(Settings().device))


def keys_file(folder: Path) -> Path:
    """A keys file (as a deployment mounts one) with the suite's key, with limits no test of other things reaches."""
    path = folder / "api-keys"
    path.write_text(f"tests {TEST_KEY} rate_limit=100000/minute max_active_jobs=100000 max_chars_per_day=10000000000\n",
                    encoding="utf-8")
    return path


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


def wait_until_ready(client: TestClient, timeout: float = 180) -> None:
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
