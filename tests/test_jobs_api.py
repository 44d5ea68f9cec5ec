"""The job API over HTTP on the tiny models: progress, every result format, cancellation, uploads, cache.

One app (one engine, one worker) serves the whole module; each test submits its own jobs.
"""

from __future__ import annotations

import gzip
import io
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benchmarks.corpus import text_path
from booknlp_api.config import Settings
from booknlp_api.engine.native import EXTENSIONS
from booknlp_api.engine.result_schema import SECTIONS, AnalysisResult
from booknlp_api.jobs.recovery import Recovery
from booknlp_api.jobs.store import WorkerRecord
from tests.conftest import AUTH, BACKENDS, backend_setting, hold_seam_env, keys_file, set_job, wait_until_ready
from tests.epub_books import Epub, chapter_xhtml, declared_xhtml, wild_epub

NOVEL = text_path("pride_and_prejudice.txt").read_text(encoding="utf-8")
CHAPTER = NOVEL[:12_000]
CHAPTERS = NOVEL[:40_000]
"""Long enough that a job's progress, written at most every ``PROGRESS_EVERY`` seconds, shows several stages to
a poller even on a fast machine (the tiny models took 2.7 s over ``CHAPTER``: sometimes only three values)."""
FAST = ["supersense"]
"""A pipeline that skips the slow stages, for jobs whose analysis is not the point."""


@pytest.fixture(scope="module")
def hold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file exists, the worker process waits before each BERT batch (tests/seams)."""
    return tmp_path_factory.mktemp("hold") / "hold"


@pytest.fixture(scope="module", params=BACKENDS)
def client(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory, hold: Path,
           request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The app and its worker process, on each kind of job database (PostgreSQL: texts and results in it too)."""
    from booknlp_api.api.app import create_app

    data_dir = tmp_path_factory.mktemp("jobs-data")
    database = backend_setting(request)
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=data_dir, max_job_chars=100_000,
                        shutdown_grace_seconds=0, api_keys_file=keys_file(data_dir), database_url=database)
    with pytest.MonkeyPatch.context() as patch:
        seam = hold_seam_env(hold)
        for name in ("PYTHONPATH", "HOLD_BATCHES_FILE"):  # the worker processes inherit our environment
            patch.setenv(name, seam[name])
        with TestClient(create_app(settings), raise_server_exceptions=False, headers=AUTH) as client:
            wait_until_ready(client)
            yield client


def _submit(client: TestClient, text: str, **options: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"text": text, **options})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert response.headers["location"] == job["links"]["self"] == f"/v1/jobs/{job['id']}"
    return job


def _wait(client: TestClient, job_id: str, statuses: set[str], timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} never reached {statuses}")


def _wait_for_progress(client: TestClient, job_id: str, timeout: float = 300) -> None:
    """Until the job runs and has made some progress: mid-run, not merely claimed."""
    deadline = time.monotonic() + timeout
    while not (_wait(client, job_id, {"running"})["progress"] or {}).get("fraction"):
        assert time.monotonic() < deadline, f"job {job_id} made no progress"
        time.sleep(0.05)


def test_a_chapter_reports_real_progress_and_serves_json_native_and_html(client: TestClient) -> None:
    job = _submit(client, CHAPTERS, book_id="pride", cache=False)
    assert job["status"] == "queued" and job["links"]["result"] == f"/v1/jobs/{job['id']}/result"
    early = client.get(job["links"]["result"])
    assert early.status_code == 409 and early.json()["error"]["details"]["status"] in ("queued", "running")
    fractions, etas = [], []
    deadline = time.monotonic() + 300
    while (state := client.get(job["links"]["self"]).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        if state["progress"]:
            fractions.append(state["progress"]["fraction"])
            etas.append(state["progress"]["eta_seconds"])
        time.sleep(0.05)
    assert state["status"] == "succeeded", state["error"]
    distinct = sorted(set(fractions))
    # Stage by stage here (polled, so batches may pass unseen); batch by batch: tests/test_jobs_worker.py.
    assert fractions == sorted(fractions) and len([f for f in distinct if 0 < f < 1]) >= 4, distinct
    assert any(eta is not None for eta in etas)
    stages = state["progress"]["stages"]
    assert [s["name"] for s in stages] == ["parse", "tagger", "quotes", "attribution", "names", "gender", "coref",
                                           "output"]
    assert all(s["status"] == "done" and s["seconds"] is not None for s in stages)
    assert state["expires_at"] > state["finished_at"] >= state["started_at"] >= state["created_at"]

    result = AnalysisResult.model_validate_json(client.get(job["links"]["result"]).content)
    assert result.book_id == "pride" and result.token_count and result.token_count > 2000
    assert all(getattr(result, section) is not None for section in SECTIONS)
    narrow = client.get(job["links"]["result"], params={"sections": ["entities", "quotes"]}).json()
    assert [s for s in SECTIONS if narrow[s] is not None] == ["entities", "quotes"]
    assert narrow["entities"] == result.model_dump(mode="json")["entities"]

    native = client.get(job["links"]["result"], params={"format": "native"})
    assert native.headers["content-type"] == "application/zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(native.content)).namelist()) == sorted(f"pride.{e}" for e in EXTENSIONS)
    html = client.get(job["links"]["result"], params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and "<html" in html.text.lower()


def test_cancelling_a_running_job_stops_it_and_the_next_job_starts(client: TestClient, hold: Path) -> None:
    hold.touch()  # the job cannot end before the test cancels it, however fast the machine
    try:
        _cancel_a_held_job(client, hold)
    finally:
        hold.unlink(missing_ok=True)


def _cancel_a_held_job(client: TestClient, hold: Path) -> None:
    long = _submit(client, NOVEL[20_000:24_000], cache=False)
    _wait_for_progress(client, long["id"])  # held mid-run: the queue behind it stays put
    following = _submit(client, "Mr. Darcy walked away.", pipeline=FAST, cache=False)
    never = _submit(client, "Elizabeth laughed.", pipeline=FAST, cache=False)
    assert (following["queue_position"], never["queue_position"]) == (1, 2)
    dropped = client.delete(never["links"]["self"])
    assert dropped.status_code == 200 and dropped.json()["status"] == "cancelled"

    stopping = client.delete(long["links"]["self"])
    assert stopping.status_code == 202 and stopping.json()["cancel_requested"] is True
    cancelled = _wait(client, long["id"], {"cancelled", "succeeded", "failed"})
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["fraction"] < 1
    hold.unlink()
    after = _wait(client, following["id"], {"succeeded", "failed"})
    assert after["status"] == "succeeded" and after["started_at"] >= cancelled["finished_at"]
    assert client.get(never["links"]["self"]).json()["started_at"] is None
    refused = client.get(long["links"]["result"])
    assert refused.status_code == 409 and refused.json()["error"]["details"]["status"] == "cancelled"
    assert client.delete(long["links"]["self"]).status_code == 409


def test_an_uploaded_gzipped_latin1_gutenberg_file_is_decoded_and_stripped(client: TestClient) -> None:
    book = "Chapter 1\n\nThe café was naïve, said Émile."
    raw = (f"The Project Gutenberg EBook of Nothing\n\n*** START OF THIS PROJECT GUTENBERG EBOOK NOTHING ***\n\n"
           f"{book}\n\n*** END OF THIS PROJECT GUTENBERG EBOOK NOTHING ***\nLicence.").encode("iso-8859-1")
    response = client.post("/v1/jobs", files={"file": ("book.txt.gz", gzip.compress(raw),
                                                       "text/plain; charset=iso-8859-1")},
                           data={"pipeline": "supersense", "strip_gutenberg": "true", "book_id": "nothing"})
    assert response.status_code == 202, response.text
    job = _wait(client, response.json()["id"], {"succeeded", "failed"})
    assert (job["status"], job["text_chars"], job["book_id"]) == ("succeeded", len(book), "nothing")
    assert job["text_offset"] == raw.decode("iso-8859-1").index("Chapter 1")
    words = [t["text"] for t in client.get(job["links"]["result"]).json()["tokens"]]
    assert words[:2] == ["Chapter", "1"] and "Émile" in words and "Licence" not in words


def test_an_uploaded_epub_and_html_page_are_analysed_as_their_prose(client: TestClient) -> None:
    epub, expected = wild_epub(chapters=1)
    response = client.post("/v1/jobs", files={"file": ("wild.epub", epub, "application/epub+zip")},
                           data={"pipeline": "supersense", "book_id": "wild"})
    assert response.status_code == 202, response.text
    job = _wait(client, response.json()["id"], {"succeeded", "failed"})
    assert (job["status"], job["text_chars"]) == ("succeeded", len(expected))
    words = [t["text"] for t in client.get(job["links"]["result"]).json()["tokens"]]
    assert words[:3] == ["Chapter", "I.", "Into"] and "COVER" not in words and "tracking" not in words
    page = client.post("/v1/jobs", files={"file": ("p.html", b"<p>Buck <b>ran</b>.</p><script>x</script>", "")},
                       data={"pipeline": "supersense"})
    assert page.status_code == 202 and page.json()["text_chars"] == len("Buck ran.")
    broken = client.post("/v1/jobs", files={"file": ("bad.epub", b"PK\x03\x04 no zip", "application/epub+zip")})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_epub"


def test_an_epub_in_a_declared_encoding_is_read_in_it_and_bad_bytes_are_a_422(client: TestClient) -> None:
    def post(book: Epub) -> Any:
        return client.post("/v1/jobs", files={"file": ("cafe.epub", book.bytes(), "application/epub+zip")},
                           data={"pipeline": "supersense"})

    words = ["“Café,” said Buck."]
    declared = post(Epub().add("c.xhtml", declared_xhtml("Chapter I.", words, "cp1252", "windows-1252")))
    assert declared.status_code == 202 and declared.json()["text_chars"] == len("Chapter I.\n\n“Café,” said Buck.")
    undeclared = post(Epub().add("c.xhtml", chapter_xhtml("Chapter I.", words).encode("cp1252")))  # says UTF-8
    assert undeclared.status_code == 422, undeclared.text
    error = undeclared.json()["error"]
    assert error["code"] == "undecodable_text" and "OEBPS/text/c.xhtml" in error["message"]
    assert error["details"]["encoding"] == "utf-8"
    _wait(client, declared.json()["id"], {"succeeded", "failed"})


def test_text_input_errors_name_what_is_wrong(client: TestClient) -> None:
    bad = client.post("/v1/jobs", files={"file": ("b.txt", b"Scrooge\xff", "text/plain")})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "undecodable_text" and bad.json()["error"]["details"]["offset"] == 7
    body = '{"text": "“Humbug,” said Scrooge.", "pipeline": ["supersense"]}'.encode("utf-16")
    utf16 = client.post("/v1/jobs", content=body, headers={"content-type": "application/json; charset=utf-16"})
    assert utf16.status_code == 202, utf16.text
    assert utf16.json()["text_chars"] == len("“Humbug,” said Scrooge.")
    too_long = client.post("/v1/jobs", json={"text": "x" * 100_001})
    assert too_long.status_code == 413 and too_long.json()["error"]["code"] == "text_too_large"
    assert client.post("/v1/jobs", content=b"text", headers={"content-type": "text/plain"}).status_code == 415
    missing = client.post("/v1/jobs", files={"upload": ("b.txt", b"text", "text/plain")})
    assert missing.status_code == 422
    unknown = client.post("/v1/jobs", json={"text": "text", "pipeline": ["sentiment"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "validation_error"


def test_an_idempotency_key_makes_a_retry_return_the_same_job(client: TestClient) -> None:
    body = {"text": "Marley was dead, to begin with.", "pipeline": FAST, "cache": False}
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "retry-me"})
    again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "retry-me"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/jobs", json={**body, "text": "Scrooge was not."}, headers={"Idempotency-Key": "retry-me"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_an_identical_submission_is_served_from_the_cache_unless_refused(client: TestClient) -> None:
    text = "The Ghost of Christmas Past was a strange figure."
    original = _wait(client, _submit(client, text, pipeline=FAST)["id"], {"succeeded", "failed"})
    cached = _submit(client, text, pipeline=FAST, sections=["tokens"])
    assert (cached["status"], cached["cached"], cached["cached_from"]) == ("succeeded", True, original["id"])
    first, second = (client.get(f"/v1/jobs/{j['id']}/result").json() for j in (original, cached))
    assert second["tokens"] == first["tokens"] and second["supersenses"] is None
    fresh = _submit(client, text, pipeline=FAST, cache=False)
    assert fresh["status"] == "queued" and fresh["cached"] is False


def test_an_analysis_that_outlasts_the_wait_answers_202_with_its_job(client: TestClient,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client.app.state.runtime.settings, "analyze_wait_seconds", 0)  # type: ignore[attr-defined]
    response = client.post("/v1/analyze", json={"text": "Bob Cratchit smiled.", "pipeline": FAST, "cache": False})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == job["links"]["self"]
    assert _wait(client, job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert client.get(job["links"]["result"]).json()["tokens"][0]["text"] == "Bob"


def test_a_format_the_pipeline_did_not_produce_is_404_saying_what_it_needs(client: TestClient) -> None:
    job = _wait(client, _submit(client, "Tiny Tim.", pipeline=FAST, cache=False)["id"], {"succeeded"})
    response = client.get(job["links"]["result"], params={"format": "html"})
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "format_not_produced" and "needs the quote and coref pipes" in error["message"]
    assert client.get(job["links"]["result"], params={"format": "native"}).status_code == 200


def test_an_expired_result_is_gone(client: TestClient) -> None:
    job = _wait(client, _submit(client, "Tiny Tim.", pipeline=FAST, cache=False)["id"], {"succeeded"})
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    set_job(runtime.jobs.store, job["id"], expires_at=time.time() - 1)
    me = WorkerRecord(id="test", host="here", pid=os.getpid(), started_at=time.time(), heartbeat_at=time.time())
    Recovery(runtime.jobs.store, runtime.jobs.signals, runtime.jobs.files, me, lease_seconds=30, max_attempts=3,
             ttl_seconds=60).expire(time.time())
    gone = client.get(job["links"]["result"])
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "result_expired"
    assert client.get(job["links"]["self"]).json()["result_expired"] is True
    assert not any(runtime.jobs.files.results.glob(f"{job['id']}.*"))


def test_jobs_are_listed_newest_first_by_status_a_page_at_a_time(client: TestClient) -> None:
    ids = [_submit(client, f"Page test {n}.", pipeline=FAST, cache=False)["id"] for n in range(3)]
    for job_id in ids:
        _wait(client, job_id, {"succeeded"})
    page = client.get("/v1/jobs", params={"status": "succeeded", "limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == ids[:0:-1] and page["total"] >= 3 and page["limit"] == 2
    second = client.get("/v1/jobs", params={"status": "succeeded", "limit": 2, "offset": 2}).json()
    assert second["jobs"][0]["id"] == ids[0]
    assert client.get("/v1/jobs", params={"status": "exploded"}).status_code == 422
    assert client.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert client.get("/v1/jobs/not-a-job").status_code == 422, "the schema says what an id looks like"


def test_openapi_documents_both_submission_forms_and_every_result_format() -> None:
    from booknlp_api.api.app import create_app

    spec = create_app(Settings()).openapi()
    submit = spec["paths"]["/v1/jobs"]["post"]
    content = submit["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert set(content["application/json"]["examples"]) == {"chapter", "gutenberg"}
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
    assert {"202", "413", "415", "422", "503"} <= set(submit["responses"])
    result = spec["paths"]["/v1/jobs/{job_id}/result"]["get"]["responses"]
    assert set(result["200"]["content"]) == {"application/json", "application/zip", "text/html"}
    assert {"404", "409", "410"} <= set(result)
    assert spec["components"]["schemas"]["JobPublic"]["examples"][0]["status"] == "running"


def test_info_reports_the_job_limits(client: TestClient) -> None:
    limits = client.get("/v1/info").json()["limits"]
    assert limits["max_job_chars"] == 100_000
    assert {"max_job_bytes", "max_queued_jobs", "analyze_wait_seconds", "job_ttl_seconds"} <= set(limits)


def test_precision_is_recorded_shown_in_the_result_and_part_of_the_cache_key(client: TestClient) -> None:
    text = "Marley was dead, to begin with. Scrooge knew he was dead."
    exact = _wait(client, _submit(client, text, pipeline=FAST)["id"], {"succeeded", "failed"})
    assert (exact["status"], exact["precision"]) == ("succeeded", "exact")
    submitted = _submit(client, text, pipeline=FAST, precision="fast")
    assert submitted["precision"] == "fast" and submitted["cached"] is False, "an exact result is no fast result"
    fast = _wait(client, submitted["id"], {"succeeded", "failed"})
    assert fast["status"] == "succeeded"
    assert client.get(fast["links"]["result"]).json()["precision"] == "fast"
    assert client.get(exact["links"]["result"]).json()["precision"] == "exact"
    again = _submit(client, text, pipeline=FAST, precision="fast")
    assert (again["cached"], again["cached_from"], again["precision"]) == (True, fast["id"], "fast")
    upload = client.post("/v1/jobs", files={"file": ("marley.txt", text.encode(), "text/plain")},
                         data={"pipeline": "supersense", "precision": "fast"})
    assert upload.status_code == 202 and upload.json()["precision"] == "fast"
    wrong = client.post("/v1/jobs", json={"text": text, "precision": "quick"})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "validation_error"
