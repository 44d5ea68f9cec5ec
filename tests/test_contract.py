"""The published contract says exactly what is accepted, and a schema-driven fuzzer cannot break it.

The fuzzer (schemathesis, every check, stateful links from ``POST /v1/jobs``) runs against the real
``booknlp-api serve`` on the tiny synthetic models, with an API key as auth is on by default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from booknlp_api.api.schemas import BLANK
from tests.conftest import TEST_KEY
from tests.server_process import running_server

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ROOT = Path(__file__).resolve().parents[1]
MIN_CASES = 1000


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_paging_past_any_store_is_a_422_not_a_500(api_client: TestClient) -> None:
    error = _error(api_client.get("/v1/jobs", params={"offset": "17144009297257032730168786944"}), 422)
    assert error["code"] == "validation_error" and error["details"][0]["loc"] == ["query", "offset"]
    assert api_client.get("/v1/jobs", params={"offset": 1_000_000_000}).status_code == 200


@pytest.mark.parametrize("cache", [0, 1, "false", "true", None, [True]])
def test_a_boolean_of_the_wrong_type_is_refused_not_coerced(api_client: TestClient, cache: Any) -> None:
    error = _error(api_client.post("/v1/analyze", json={"text": "Hello.", "cache": cache}), 422)
    assert [d["loc"] for d in error["details"]] == [["body", "cache"]]


def test_the_schema_says_what_text_and_pipeline_accept(api_client: TestClient) -> None:
    spec = api_client.get("/openapi.json").json()
    job_body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    for body in (spec["components"]["schemas"]["AnalyzeRequest"], job_body):
        text = body["properties"]["text"]
        assert text["minLength"] == 1
        pattern = re.compile(text["pattern"])  # Python and ECMA-262 read this explicit class alike
        assert not pattern.search(BLANK) and pattern.search("\ufeff") and pattern.search(" a ")
        [pipeline, _] = body["properties"]["pipeline"]["anyOf"]
        assert pipeline["items"]["enum"] == ["entity", "quote", "supersense", "event", "coref"]
        assert pipeline["minItems"] == 1
        assert {"if": {"contains": {"const": "quote"}}, "then": {"allOf": [{"contains": {"const": "entity"}}]}} \
            in pipeline["allOf"]


def test_the_schema_lists_the_models_found_and_the_security_schemes(api_client: TestClient) -> None:
    spec = api_client.get("/openapi.json").json()
    [model, _] = spec["components"]["schemas"]["AnalyzeRequest"]["properties"]["model"]["anyOf"]
    assert model == {"type": "string", "enum": ["tiny"]}
    assert set(spec["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    assert spec["paths"]["/v1/jobs"]["get"]["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    links = spec["paths"]["/v1/jobs"]["post"]["responses"]["202"]["links"]
    assert {link["operationId"] for link in links.values()} == {"get_job", "get_result", "cancel_job"}


def test_a_multipart_form_has_no_null_fields_and_takes_the_text_as_a_plain_field(api_client: TestClient) -> None:
    spec = api_client.get("/openapi.json").json()
    form = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert all("anyOf" not in field and field.get("type") != "null" for field in form["properties"].values())
    fields = {"file": "Marley was dead.", "pipeline": "supersense", "cache": "false"}
    response = api_client.post("/v1/jobs", files={name: (None, value) for name, value in fields.items()})
    assert response.status_code == 202, response.text
    assert response.json()["pipeline"] == ["supersense"]
    refused = api_client.post("/v1/jobs", files={"file": (None, "Marley."), "cache": (None, "yes")})
    assert [d["loc"] for d in _error(refused, 422)["details"]] == [["body", "cache"]]
    blank = api_client.post("/v1/jobs", files={"file": (None, " \n ")})
    assert _error(blank, 422)["details"][0]["type"] == "string_pattern_mismatch"


def test_a_batch_form_is_described_exactly_and_takes_books_as_plain_fields(api_client: TestClient) -> None:
    spec = api_client.get("/openapi.json").json()
    form = spec["paths"]["/v1/batches"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert all("anyOf" not in field and field.get("type") != "null" for field in form["properties"].values())
    assert "book_id" not in form["properties"] and form["additionalProperties"] is False
    books = form["properties"]["file"]
    assert books["type"] == ["string", "array"] and books["maxItems"] == 500 and books["items"]["minLength"] == 1
    fields = [("file", (None, "Marley was dead.")), ("file", (None, "Scrooge knew.")), ("pipeline", (None, "entity"))]
    sent = api_client.post("/v1/batches", files=fields)
    assert sent.status_code == 202, sent.text
    assert [b["name"] for b in sent.json()["jobs"]] == ["book", "book-2"]
    named = api_client.post("/v1/batches", files=[("file", (None, "Marley.")), ("book_id", (None, "carol"))])
    assert [d["loc"] for d in _error(named, 422)["details"]] == [["body", "book_id"]]
    blank = api_client.post("/v1/batches", files=[("file", (None, "Marley.")), ("file", (None, " \n "))])
    assert _error(blank, 422)["details"][0]["type"] == "string_pattern_mismatch"


def test_every_405_allows_exactly_the_methods_of_its_path(api_client: TestClient) -> None:
    spec = api_client.get("/openapi.json").json()
    job = "0" * 32
    for path, operations in spec["paths"].items():
        documented = {method.upper() for method in operations}
        response = api_client.request("PATCH", path.replace("{job_id}", job).replace("{batch_id}", job))
        assert _error(response, 405)["code"] == "method_not_allowed"
        assert set(response.headers["allow"].split(", ")) == documented, path
    options = api_client.options("/v1/jobs")
    assert _error(options, 405) and options.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches"])
def test_a_multipart_body_that_cannot_be_parsed_is_a_documented_400(api_client: TestClient, path: str) -> None:
    body = b"--b\r\n[]--b--\r\n"  # what the fuzzer sent: a part with no headers, cut short
    response = api_client.post(path, content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert _error(response, 400)["code"] == "invalid_form"
    assert "400" in api_client.get("/openapi.json").json()["paths"][path]["post"]["responses"]


@pytest.mark.timeout(900)
def test_the_fuzzer_finds_nothing(tiny_models_dir: Path, tmp_path: Path) -> None:
    """Every schemathesis check, >= 1,000 generated cases, stateful links from job submissions; 0 failures."""
    # 20 books a batch: the contract publishes it (maxItems), and the fuzzer's largest batch is accepted within its
    # 10 s read timeout on a loaded machine.
    settings = {"BOOKNLP_MAX_QUEUED_JOBS": "100000", "BOOKNLP_ANALYZE_WAIT_SECONDS": "5",
                "BOOKNLP_MAX_BATCH_BOOKS": "20"}
    with running_server(tiny_models_dir, tmp_path / "data", **settings) as server:
        server.start()
        started = time.monotonic()
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{server.client.base_url}/openapi.json", "--checks", "all",
             "--header", f"Authorization: Bearer {TEST_KEY}", "--max-examples", "30", "--workers", "1",
             "--no-color", "--report", "junit", "--report-dir", str(tmp_path / "report"),
             # DELETE on a job or a batch cancels it: its record (and any finished book's results) stays readable
             # until it expires, by design, which this one check reads as a deleted resource still served.
             "--exclude-checks", "use_after_free"],
            capture_output=True, text=True, timeout=1200, cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract_hooks",
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
        seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    print(f"schemathesis ran {seconds:.0f} s\n{output[-3000:]}")
    assert run.returncode == 0, output[-12000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output[-3000:]
    generated, passed = map(int, counts.groups())
    assert generated >= MIN_CASES and passed == generated
    links = re.search(r"API Links:\s+(\d+) covered", output)
    assert links is not None and int(links.group(1)) >= 3, "the stateful phase followed links from a new job"
