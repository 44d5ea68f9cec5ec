"""Every bad request gets a clear 4xx in the one error shape; unexpected failures never leak their text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from booknlp_api.api.errors import from_engine
from booknlp_api.api.runtime import Runtime
from booknlp_api.config import Settings
from booknlp_api.engine.errors import Cancelled, DeviceOutOfMemory, InvalidInput, StageFailed
from tests.conftest import AUTH, keys_file

JSON = {"content-type": "application/json"}


def error_of(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


def runtime_of(client: TestClient) -> Runtime:
    app: FastAPI = client.app  # type: ignore[assignment]
    runtime: Runtime = app.state.runtime
    return runtime


@pytest.fixture(scope="module")
def faulty_client(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app with no worker processes and, for these tests only, a worker thread on the API's own engine,
    whose ``analyze`` a test replaces to make the analysis fail (a worker process is out of its reach)."""
    from booknlp_api.api.app import create_app

    data_dir = tmp_path_factory.mktemp("faulty-data")
    settings = Settings(models_dir=tiny_models_dir, model="tiny", max_queued_jobs=2, workers=0, result_cache=False,
                        data_dir=data_dir, api_keys_file=keys_file(data_dir))
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=AUTH) as client:
        runtime_of(client).jobs.start()
        yield client


@pytest.mark.parametrize(("text", "rule"), [("", "string_too_short"), ("   \n\t  \r\n", "string_pattern_mismatch"),
                                           ("\x1c\u3000\u2029", "string_pattern_mismatch")])
def test_empty_or_blank_text_breaks_the_published_schema(api_client: TestClient, text: str, rule: str) -> None:
    error = error_of(api_client.post("/v1/analyze", json={"text": text}), 422, "validation_error")
    assert [(d["loc"], d["type"]) for d in error["details"]] == [(["body", "text"], rule)]


@pytest.mark.parametrize(("body", "where"), [
    ({"text": 42}, ["body", "text"]),
    ({"text": ["a"]}, ["body", "text"]),
    ({"text": "hi", "pipeline": "entity"}, ["body", "pipeline"]),
    ({"text": "hi", "sections": ["tokens", "pages"]}, ["body", "sections", 1]),
    ({"text": "hi", "book_id": "../../etc"}, ["body", "book_id"]),
    ({"text": "hi", "colour": "red"}, ["body", "colour"]),
    ({}, ["body", "text"]),
    ([1, 2], ["body"]),
])
def test_wrong_fields_are_validation_errors_naming_the_field(api_client: TestClient, body: Any,
                                                             where: list[Any]) -> None:
    error = error_of(api_client.post("/v1/analyze", json=body), 422, "validation_error")
    assert where in [detail["loc"] for detail in error["details"]]
    assert "input" not in error["details"][0]


def test_unknown_pipe_lists_the_valid_ones(api_client: TestClient) -> None:
    error = error_of(api_client.post("/v1/analyze", json={"text": "hi", "pipeline": ["entity", "sentiment"]}),
                     422, "validation_error")
    assert [d["loc"] for d in error["details"]] == [["body", "pipeline", 1]]
    assert "'entity', 'quote', 'supersense', 'event' or 'coref'" in error["message"]


@pytest.mark.parametrize(("pipeline", "missing"), [
    (["quote"], "quote requires entity"), (["entity", "coref"], "coref requires quote"),
])
def test_a_pipe_without_what_it_needs_says_what_is_missing(api_client: TestClient, pipeline: list[str],
                                                           missing: str) -> None:
    error = error_of(api_client.post("/v1/analyze", json={"text": "hi", "pipeline": pipeline}),
                     422, "invalid_pipeline")
    assert missing in error["message"]


def test_a_model_without_files_lists_the_available_ones(api_client: TestClient) -> None:
    error = error_of(api_client.post("/v1/analyze", json={"text": "hi", "model": "big"}), 422, "model_not_available")
    assert error["details"] == {"available": ["tiny"]}
    assert "'big'" in error["message"] and "tiny" in error["message"]


def test_a_text_above_the_limit_is_413_pointing_to_the_job_api(api_client: TestClient) -> None:
    error = error_of(api_client.post("/v1/analyze", json={"text": "a" * 50_001}), 413, "text_too_large")
    assert "POST /v1/jobs" in error["message"]
    assert error["details"] == {"chars": 50_001, "max_analyze_chars": 50_000}


def test_an_oversized_body_is_refused_before_parsing(api_client: TestClient) -> None:
    limit = api_client.get("/v1/info").json()["limits"]["max_body_bytes"]
    error = error_of(api_client.post("/v1/analyze", content=b"[" * (limit + 1), headers=JSON),
                     413, "body_too_large")
    assert error["details"] == {"max_body_bytes": limit}


def test_an_oversized_chunked_body_is_refused_while_streaming(api_client: TestClient) -> None:
    limit = api_client.get("/v1/info").json()["limits"]["max_body_bytes"]

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(limit // 10_000 + 1):
            yield b"a" * 10_000
        yield b'"}'

    error_of(api_client.post("/v1/analyze", content=chunks(), headers=JSON), 413, "body_too_large")


@pytest.mark.parametrize("body", [
    b'{"text": "caf\xe9 au lait"}',  # Latin-1, not UTF-8
    b"[" * 100_000 + b"]" * 100_000,  # nesting far past the parser's recursion limit
    b'{"text": "hi"',
    b"text=hi",
])
def test_bodies_that_are_not_json_are_400(api_client: TestClient, body: bytes) -> None:
    error = error_of(api_client.post("/v1/analyze", content=body, headers=JSON), 400, "invalid_json")
    assert "not valid JSON" in error["message"]


def test_moderately_nested_json_is_a_validation_error(api_client: TestClient) -> None:
    body = b'{"text": ' + b"[" * 500 + b"]" * 500 + b"}"
    error_of(api_client.post("/v1/analyze", content=body, headers=JSON), 422, "validation_error")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_not_declared_json_is_415(api_client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    error = error_of(api_client.post("/v1/analyze", content=b'{"text": "hi"}', headers=headers),
                     415, "unsupported_media_type")
    assert "application/json" in error["message"]


def test_unknown_paths_and_methods_use_the_error_shape(api_client: TestClient) -> None:
    assert "Not Found" in error_of(api_client.get("/v1/nothing"), 404, "not_found")["message"]
    response = api_client.get("/v1/analyze")
    assert "GET is not allowed" in error_of(response, 405, "method_not_allowed")["message"]
    assert response.headers["allow"] == "POST"


def test_a_full_queue_answers_503_with_retry_after(faulty_client: TestClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    api_client = faulty_client
    runtime = runtime_of(api_client)
    gate = threading.Event()

    def held(*_: object, **__: object) -> None:
        gate.wait(60)
        raise StageFailed("parse", "held by the test")

    monkeypatch.setattr(runtime.service, "analyze", held)
    jobs = [api_client.post("/v1/jobs", json={"text": f"Call me Ishmael {n}.", "pipeline": ["event"]}).json()["id"]
            for n in range(runtime.settings.max_queued_jobs + 1)]  # one running, the rest filling the queue
    try:
        _until(lambda: api_client.get(f"/v1/jobs/{jobs[0]}").json()["status"] == "running")
        response = api_client.post("/v1/analyze", json={"text": "Call me Ishmael.", "pipeline": ["event"]})
        error = error_of(response, 503, "queue_full")
        assert response.headers["retry-after"].isdigit()
        assert error["details"] == {"queued": runtime.settings.max_queued_jobs}
    finally:
        for job_id in jobs:
            api_client.delete(f"/v1/jobs/{job_id}")
        gate.set()
    _until(lambda: api_client.get(f"/v1/jobs/{jobs[0]}").json()["status"] != "running")


def _until(done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the job never got there"
        time.sleep(0.02)


def test_a_failing_stage_is_422_naming_it(faulty_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    api_client = faulty_client
    def fail(*_: object, **__: object) -> None:
        raise StageFailed("coref", "IndexError: list index out of range")

    monkeypatch.setattr(runtime_of(api_client).service, "analyze", fail)
    error = error_of(api_client.post("/v1/analyze", json={"text": "Call me Ishmael."}), 422, "stage_failed")
    assert error["details"] == {"stage": "coref"}
    assert "coref" in error["message"]


def test_an_unexpected_error_is_a_generic_500(faulty_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    api_client = faulty_client
    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("secret path /srv/models/x and a password")

    monkeypatch.setattr(runtime_of(api_client).service, "analyze", crash)
    response = api_client.post("/v1/analyze", json={"text": "Call me Ishmael."})
    error = error_of(response, 500, "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert error["message"] == "an unexpected error occurred; it has been logged"
    worker = runtime_of(api_client).jobs.worker
    assert worker is not None and worker.alive


@pytest.mark.parametrize(("exc", "status", "code"), [
    (DeviceOutOfMemory("tagger", "the GPU ran out of memory"), 503, "device_out_of_memory"),
    (StageFailed("attribution", "ValueError: x"), 422, "stage_failed"),
    (Cancelled(), 503, "cancelled"),
    (InvalidInput("book_id must be 1-100 letters"), 422, "invalid_input"),
])
def test_engine_errors_map_to_statuses(exc: Exception, status: int, code: str) -> None:
    error = from_engine(exc)  # type: ignore[arg-type]
    assert (error.status, error.code) == (status, code)
    assert error.message
