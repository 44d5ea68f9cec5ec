"""The HTTP API end to end on synthetic tiny models: probes, info, analyses, offline docs, the schema."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benchmarks.corpus import text_path
from booknlp_api.api.app import create_app
from booknlp_api.config import Settings
from booknlp_api.engine.pipeline import PIPES
from booknlp_api.engine.precision import cpu_computes_bf16
from booknlp_api.engine.result_schema import SECTIONS, AnalysisResult
from tests.conftest import assert_reported_device, expected_device

CHAPTER = text_path("pride_and_prejudice.txt").read_text(encoding="utf-8")[:2000]
SNAPSHOT = Path(__file__).with_name("openapi.json")


def test_ready_reports_the_device_the_synthetic_model_and_versions(api_client: TestClient) -> None:
    response = api_client.get("/v1/ready")
    assert response.status_code == 200
    ready = response.json()
    assert_reported_device(ready["device"])
    [model] = ready["models"]
    assert model["name"] == "tiny" and model["synthetic"] is True and model["seed"] == 0
    assert model["source"] == "synthesized"
    assert model["components"] == ["entity", "quote", "coref"]
    assert ready["synthetic_models"] is True
    versions = ready["versions"]
    assert versions["booknlp"] == "1.0.8" and versions["torch"] and versions["transformers"]
    assert versions["spacy_model"].startswith("en_core_web_sm")
    [worker] = ready["workers"]  # the app's one worker process, listed with where it runs and what it holds
    assert (worker["host"], worker["state"], worker["error"]) == (socket.gethostname(), "ready", None)
    assert worker["pid"] != os.getpid() and worker["id"].startswith(f"{worker['host']}:{worker['pid']}:")
    assert worker["device"]["device"] == ready["device"]["device"] and worker["models"] == ready["models"]


def test_bare_probe_paths_answer_like_the_versioned_ones(api_client: TestClient) -> None:
    assert api_client.get("/v1/health").json() == api_client.get("/health").json() == {"status": "ok"}
    assert api_client.get("/ready").json() == api_client.get("/v1/ready").json()


def test_info_lists_models_pipes_sections_and_limits(api_client: TestClient) -> None:
    info = api_client.get("/v1/info").json()
    assert info["default_model"] == "tiny"
    [model] = info["models"]
    assert (model["name"], model["synthetic"], model["loaded"]) == ("tiny", True, True)
    assert set(model["components"]) == {"entity", "quote", "coref"}
    assert info["pipes"] == list(PIPES) and info["sections"] == list(SECTIONS)
    assert info["limits"] == {"max_analyze_chars": 50_000, "max_body_bytes": 400_000 + 65_536,
                              "max_job_chars": 4_000_000, "max_job_bytes": 400_000, "max_queued_jobs": 2,
                              "analyze_wait_seconds": 60.0, "job_ttl_seconds": 7 * 86400.0}
    assert info["versions"]["booknlp"] == "1.0.8"
    assert info["default_precision"] == "exact"
    assert [(p["name"], p["options"]) for p in info["precisions"]] == [
        ("exact", []), ("fast", ["spaCy parse split at paragraph breaks over up to 2 processes"]
                         + (["tagger batches shared over up to 2 single-thread processes",
                             "speaker batches shared over up to 2 single-thread processes",
                             "quote windows scored in batches of similar length",
                             *(["BERTs run under bfloat16 autocast",
                                "the tagger's event, supersense LSTMs run under bfloat16 autocast"]
                               if cpu_computes_bf16()
                               else ["int8 dynamic quantisation of the coref BERT's linear layers"])]
                            if expected_device().device == "cpu"
                            else ["quote windows scored in batches of similar length"]))]


def test_ready_is_503_with_the_reason_when_the_default_model_cannot_load(tmp_path: Path) -> None:
    app = create_app(Settings(models_dir=tmp_path, model="small", data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while (response := client.get("/v1/ready")).json()["error"]["code"] == "not_ready":
            assert time.monotonic() < deadline, response.text
            time.sleep(0.1)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "model_load_failed"
        assert "'small' is not available" in error["message"]
        assert client.get("/v1/health").status_code == 200


def test_full_pipeline_returns_every_section_typed(api_client: TestClient) -> None:
    response = api_client.post("/v1/analyze", json={"text": CHAPTER, "book_id": "pride"})
    assert response.status_code == 200, response.text
    result = response.json()
    AnalysisResult.model_validate(result)
    assert (result["book_id"], result["model"], result["device"]) == ("pride", "tiny", expected_device().device)
    assert result["pipeline"] == list(PIPES) and result["synthetic_models"] is True
    assert result["precision"] == "exact"
    assert result["token_count"] == len(result["tokens"]) > 300
    assert set(result["timings"]) == {"parse", "tagger", "quotes", "attribution", "names", "gender", "coref",
                                      "output"}
    for section in SECTIONS:
        assert isinstance(result[section], list), section
    assert result["tokens"] and result["entities"] and result["quotes"] and result["supersenses"]
    token = result["tokens"][0]
    assert token["text"] == "Chapter" and token["start_char"] == 0
    assert all(type(token[key]) is int for key in ("paragraph", "sentence", "index", "head", "end_char"))
    assert all(type(e["start_token"]) is int and type(e["coref"]) is int for e in result["entities"])
    # The run happened in a worker process: its scratch folder was published (moved) into results/ and the
    # submitted text deleted; nothing of this job is left behind in the data folder but its one result.
    files = api_client.app.state.runtime.jobs.files  # type: ignore[attr-defined]
    [job] = api_client.get("/v1/jobs", params={"limit": 1}).json()["jobs"]
    assert job["status"] == "succeeded" and job["book_id"] == "pride"
    assert len(list(files.results.glob(f"{job['id']}.*"))) == 1
    assert [*files.work.glob(f"{job['id']}.*"), *files.texts.glob(f"{job['id']}.*")] == []


@pytest.mark.parametrize(("request_extra", "present"), [
    ({"sections": ["supersenses", "events"]}, {"supersenses", "events"}),
    ({"exclude": ["tokens"]}, {"supersenses", "events"}),
    ({"sections": ["tokens", "entities"], "exclude": ["tokens"]}, set()),
])
def test_sections_and_exclude_leave_out_what_the_client_does_not_want(
        api_client: TestClient, request_extra: dict[str, Any], present: set[str]) -> None:
    body = {"text": CHAPTER[:600], "pipeline": ["supersense", "event"], **request_extra}
    response = api_client.post("/v1/analyze", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert {section for section in SECTIONS if result[section] is not None} == present
    assert result["pipeline"] == ["supersense", "event"]
    assert result["token_count"] > 100


def test_docs_load_only_local_assets(api_client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = api_client.get(page).text
        assert "http://" not in html and "https://" not in html, page
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(asset.endswith(".js") for asset in assets), page
        for asset in assets:
            assert asset.startswith("/docs-assets/"), asset
            response = api_client.get(asset)
            assert response.status_code == 200 and len(response.content) > 1000, asset
    assert "SwaggerUIBundle" in api_client.get("/docs-assets/swagger-ui-bundle.js").text


def test_openapi_matches_the_committed_snapshot(tmp_path: Path) -> None:
    """Contract changes are deliberate: regenerate with BOOKNLP_UPDATE_OPENAPI=1 (see docs/API.md). No models
    folder: a deployment's schema also lists its model names (``api.contract``), which vary."""
    live = create_app(Settings(models_dir=tmp_path / "models", model="small")).openapi()
    if os.environ.get("BOOKNLP_UPDATE_OPENAPI"):
        SNAPSHOT.write_text(json.dumps(live, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert live == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_openapi_documents_the_result_errors_and_examples() -> None:
    spec = create_app(Settings()).openapi()
    analyze = spec["paths"]["/v1/analyze"]["post"]
    assert analyze["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AnalysisResult"}
    for status in ("400", "413", "415", "422", "503"):
        assert analyze["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"}
    assert set(analyze["requestBody"]["content"]["application/json"]["examples"]) == {"everything", "lean"}
    assert "/health" not in spec["paths"] and "/v1/health" in spec["paths"]
