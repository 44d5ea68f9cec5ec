"""The Python client against a real `booknlp-api serve` (tiny synthetic models): every method, the exception
tree mapped from the error shape, 429 retries that honour Retry-After, and the async twin."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from booknlp_api.client import (
    AnalysisResult,
    AsyncClient,
    AuthenticationFailed,
    Client,
    InvalidRequest,
    JobFailed,
    JobPublic,
    NotFound,
)
from tests.conftest import TEST_KEY
from tests.server_process import Server, is_mid_run, running_server

CHAPTER = ("“My dear Mr. Bennet,” said his lady to him one day, “have you heard that Netherfield Park is let "
           "at last?” Mr. Bennet replied that he had not. Elizabeth laughed.")
SLOW_KEY = "bnlp_a-key-with-a-tight-rate"


@pytest.fixture(scope="module")
def server(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("client")
    keys = folder / "client-keys"
    keys.write_text(f"tests {TEST_KEY} rate_limit=100000/minute max_active_jobs=1000\n"
                    f"slow {SLOW_KEY} rate_limit=3/second\n", encoding="utf-8")
    with running_server(tiny_models_dir, folder / "data", BOOKNLP_API_KEYS_FILE=str(keys)) as server:
        server.start()
        yield server


@pytest.fixture()
def client(server: Server) -> Iterator[Client]:
    with Client(str(server.client.base_url), api_key=TEST_KEY, timeout=120) as client:
        yield client


def test_analyze_returns_the_servers_typed_result(client: Client, server: Server) -> None:
    result = client.analyze(CHAPTER, book_id="pride", cache=False, exclude=["tokens"])
    raw = server.client.post("/v1/analyze", json={"text": CHAPTER, "book_id": "pride", "exclude": ["tokens"]})
    expected = AnalysisResult.model_validate_json(raw.content)
    assert isinstance(result, AnalysisResult)
    assert result.book_id == "pride" and result.tokens is None and result.token_count == expected.token_count
    assert result.quotes == expected.quotes and result.entities == expected.entities


def test_a_book_from_text_bytes_and_a_file_each_becomes_a_job_with_all_three_result_formats(
        client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "pride and prejudice.txt"
    book.write_text(CHAPTER, encoding="utf-8")
    from_text = client.submit(CHAPTER, book_id="text", cache=False)
    from_bytes = client.submit(CHAPTER.encode("utf-8"), book_id="bytes", cache=False, pipeline=["entity"])
    from_file = client.submit(book, cache=False)
    assert (from_text.book_id, from_bytes.book_id, from_file.book_id) == ("text", "bytes", "pride_and_prejudice")
    assert from_bytes.pipeline == ["entity"] and from_file.text_chars == len(CHAPTER)

    done = client.wait(from_file, progress=True, poll=0.5, timeout=300)
    assert done.status == "succeeded" and done.progress is not None and done.progress.fraction == 1.0
    assert "100%" in capsys.readouterr().err  # the tqdm bar reached the end
    for job in (from_text, from_bytes):
        assert client.wait(job.id, timeout=300).status == "succeeded"

    result = client.result(from_file)
    assert isinstance(result, AnalysisResult) and result.book_id == "pride_and_prejudice" and result.tokens
    native = client.result(from_file, "native")
    assert isinstance(native, bytes)
    assert {Path(name).suffix for name in zipfile.ZipFile(io.BytesIO(native)).namelist()} >= {
        ".tokens", ".entities", ".quotes", ".book"}
    html = client.result(from_file.id, "html")
    assert isinstance(html, str) and "<html" in html.lower()
    narrowed = client.result(from_file, sections=["quotes"])
    assert isinstance(narrowed, AnalysisResult) and narrowed.tokens is None and narrowed.quotes is not None
    listed = client.jobs(status="succeeded", limit=100)
    assert {from_text.id, from_bytes.id, from_file.id} <= {job.id for job in listed.jobs}


def test_a_retried_submission_with_one_idempotency_key_makes_one_job(client: Client) -> None:
    first = client.submit(CHAPTER, idempotency_key="client-test-once", cache=False)
    again = client.submit(CHAPTER, idempotency_key="client-test-once", cache=False)
    assert first.id == again.id
    client.wait(first, timeout=300)


def test_cancel_and_waiting_on_a_cancelled_job_raises_job_failed(client: Client, server: Server) -> None:
    server.hold.touch()  # the job stays before its first BERT batch until it sees the cancellation
    try:
        job = client.submit(CHAPTER, cache=False)
        server.wait(job.id, is_mid_run)
        asked = client.cancel(job)
        assert asked.status == "running" and asked.cancel_requested
        with pytest.raises(JobFailed) as failed:
            client.wait(job, timeout=300)
    finally:
        server.hold.unlink(missing_ok=True)
    assert failed.value.job.status == "cancelled" and failed.value.code == "cancelled"


def test_errors_come_back_as_the_exception_for_their_status_with_the_servers_code(client: Client,
                                                                                   server: Server) -> None:
    with pytest.raises(NotFound) as missing:
        client.job("0" * 32)
    assert missing.value.status == 404 and missing.value.code == "job_not_found"
    with pytest.raises(InvalidRequest) as invalid:
        client.analyze(CHAPTER, pipeline=["coref"])  # coref needs entity and quote: the server says so
    assert invalid.value.status == 422 and "entity" in invalid.value.message
    with pytest.raises(InvalidRequest) as local:
        client.submit(CHAPTER, colour="blue")  # not an option: caught by the server's own schema, nothing sent
    assert local.value.status is None and local.value.code == "validation_error"
    with Client(str(server.client.base_url), api_key="bnlp_not-a-key") as stranger:
        with pytest.raises(AuthenticationFailed) as refused:
            stranger.jobs()
    assert refused.value.status == 401


def test_429_is_retried_after_retry_after_until_it_succeeds(server: Server) -> None:
    url = str(server.client.base_url)
    with Client(url, api_key=SLOW_KEY, max_retries=0) as impatient:
        statuses = []
        for _ in range(6):
            try:
                impatient.jobs()
                statuses.append(200)
            except Exception as exc:  # the one the client raises for a 429
                statuses.append(getattr(exc, "status", None))
                assert type(exc).__name__ == "RateLimited" and getattr(exc, "retry_after", None) is not None
    assert 429 in statuses  # the key's 3/second is really enforced ...
    with Client(url, api_key=SLOW_KEY, max_retries=10) as patient:
        pages = [patient.jobs() for _ in range(8)]  # ... and the patient client gets every answer anyway
    assert len(pages) == 8


def test_the_async_client_does_the_same(server: Server) -> None:
    async def run() -> tuple[AnalysisResult, JobPublic, bytes | str | AnalysisResult]:
        async with AsyncClient(str(server.client.base_url), api_key=TEST_KEY, timeout=120) as client:
            analysis = await client.analyze(CHAPTER, cache=False, pipeline=["entity"])
            job = await client.submit(CHAPTER.encode("utf-8"), cache=False)
            done = await client.wait(job, timeout=300, poll=0.5)
            return analysis, done, await client.result(done, "native")

    analysis, done, native = asyncio.run(run())
    assert analysis.pipeline == ["entity"] and analysis.quotes is None
    assert done.status == "succeeded" and isinstance(native, bytes) and native[:2] == b"PK"


def test_an_unreachable_service_is_a_client_error_not_a_hang() -> None:
    from booknlp_api.client import BookNLPError
    from tests.server_process import free_port

    with Client(f"http://127.0.0.1:{free_port()}", api_key=TEST_KEY, max_retries=1, backoff=0.01) as nowhere:
        with pytest.raises(BookNLPError) as failed:
            nowhere.jobs()
    assert failed.value.code == "connection_error" and isinstance(failed.value.__cause__, httpx.ConnectError)


def test_the_cli_submits_books_waits_writes_their_files_and_manages_jobs(server: Server, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from booknlp_api.cli import main

    connection = ["--server", str(server.client.base_url), "--key", TEST_KEY]
    books = [tmp_path / "first.txt", tmp_path / "second.txt"]
    for number, book in enumerate(books):
        book.write_text(f"{CHAPTER} Chapter {number}.", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["submit", *map(str, books), "--out", str(out), "--pipeline", "entity,quote", "--no-cache",
                 *connection]) == 0
    printed = capsys.readouterr()
    ids = [line.split("\t")[0] for line in printed.out.splitlines() if "\t" in line]
    assert len(ids) == 2 and "100%" in printed.err
    for name, job_id in zip(("first", "second"), ids):
        assert zipfile.ZipFile(out / f"{name}.zip").namelist()
        assert AnalysisResult.model_validate_json((out / f"{name}.json").read_bytes()).pipeline == ["entity", "quote"]
        # the files hold the server's bytes as it sent them, not a re-serialisation of the parsed result
        assert (out / f"{name}.json").read_bytes() == server.client.get(f"/v1/jobs/{job_id}/result").content
        assert (out / f"{name}.zip").read_bytes() == _served(server, job_id, "native")
    assert not list(out.glob("*.part"))

    assert main(["jobs", "list", "--status", "succeeded", "--limit", "100", *connection]) == 0
    assert set(ids) <= {line.split("\t")[0] for line in capsys.readouterr().out.splitlines()}
    assert main(["jobs", "status", ids[0], *connection]) == 0
    assert JobPublic.model_validate_json(capsys.readouterr().out).status == "succeeded"
    assert main(["jobs", "result", ids[0], "--format", "native", "--out", str(tmp_path / "a.zip"), *connection]) == 0
    assert (tmp_path / "a.zip").read_bytes() == (out / "first.zip").read_bytes()
    assert main(["jobs", "cancel", ids[0], *connection]) == 1  # it has ended: the service's 409, as an error line
    assert "error: 409 job_finished" in capsys.readouterr().err


def test_a_corpus_goes_as_one_batch_from_files_an_archive_and_the_cli(client: Client, server: Server, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from booknlp_api.cli import main
    from tests.epub_books import wild_epub

    epub, epub_text = wild_epub(chapters=1)
    (tmp_path / "wild.epub").write_bytes(epub)
    batch = client.submit_batch([tmp_path / "wild.epub", ("bennet.txt", CHAPTER.encode())], pipeline=["entity"])
    assert [book.name for book in batch.jobs] == ["wild", "bennet"] and batch.jobs[0].job.text_chars == len(epub_text)
    done = client.wait_batch(batch, timeout=300, poll=0.5)
    assert done.finished and done.counts["succeeded"] == 2 and client.batch(batch.id).fraction == 1.0
    listed = client.batches(limit=1)
    assert [b.id for b in listed.batches] == [batch.id] and listed.batches[0].counts["succeeded"] == 2
    table = client.batch_result(done, "csv")
    assert isinstance(table, str) and table.splitlines()[1].startswith("wild,")
    bundle = client.batch_result(done)
    assert isinstance(bundle, bytes) and "bennet.json" in zipfile.ZipFile(io.BytesIO(bundle)).namelist()

    async def run_async() -> tuple[str, str]:  # the async client shares the protocol: the same calls, awaited
        async with AsyncClient(str(server.client.base_url), api_key=TEST_KEY, timeout=120) as twin:
            sent = await twin.submit_batch([("darcy.txt", f"{CHAPTER} Darcy.".encode())], pipeline=["entity"])
            ended = await twin.wait_batch(sent, timeout=300, poll=0.5)
            table = await twin.batch_result(ended, "csv")
            assert isinstance(table, str)
            return ended.jobs[0].job.status, table.splitlines()[1].split(",")[0]

    assert asyncio.run(run_async()) == ("succeeded", "darcy")

    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as books:
        books.writestr("a.txt", CHAPTER)
        books.writestr("b.txt", f"{CHAPTER} Again.")
    out = tmp_path / "out"
    assert main(["submit", str(archive), "--out", str(out), "--pipeline", "entity",
                 "--server", str(server.client.base_url), "--key", TEST_KEY]) == 0
    assert "batch of 2" in capsys.readouterr().out
    assert sorted(zipfile.ZipFile(out / "corpus.zip").namelist()) == ["a.json", "a.zip", "b.json", "b.zip",
                                                                       "batch.csv"]
    assert (out / "corpus.csv").read_text(encoding="utf-8").count("succeeded") == 2


def _served(server: Server, job_id: str, result_format: str) -> bytes:
    return server.client.get(f"/v1/jobs/{job_id}/result", params={"format": result_format}).content


def test_download_streams_the_servers_bytes_into_a_path_or_an_open_file_and_an_error_leaves_no_file(
        client: Client, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from booknlp_api.cli import main

    job = client.submit(CHAPTER, book_id="saved", cache=False)  # every pipe: the HTML report needs coref
    client.wait(job, timeout=300, poll=0.5)
    assert client.download(job, tmp_path / "saved.json") == tmp_path / "saved.json"
    assert (tmp_path / "saved.json").read_bytes() == _served(server, job.id, "json")
    opened = io.BytesIO()
    client.download(job.id, opened, "html")
    assert opened.getvalue() == _served(server, job.id, "html") and b"<html" in opened.getvalue().lower()
    with pytest.raises(NotFound):
        client.download("0" * 32, tmp_path / "missing.zip", "native")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["saved.json"]
    connection = ["--server", str(server.client.base_url), "--key", TEST_KEY]  # the CLI: to a file, to stdout
    assert main(["jobs", "result", job.id, "--format", "html", "--out", str(tmp_path / "saved.html"), *connection]) == 0
    assert (tmp_path / "saved.html").read_bytes() == _served(server, job.id, "html")
    capsys.readouterr()
    assert main(["jobs", "result", job.id, *connection]) == 0
    assert capsys.readouterr().out.encode("utf-8") == _served(server, job.id, "json")

    async def run() -> bytes:
        async with AsyncClient(str(server.client.base_url), api_key=TEST_KEY, timeout=120) as twin:
            await twin.download(job, tmp_path / "saved.zip", "native")
        return (tmp_path / "saved.zip").read_bytes()

    assert asyncio.run(run()) == _served(server, job.id, "native")
