"""The web page at ``/`` in a real headless Chromium (Debian's, driven by Playwright) against a real ``serve``:
key, submission (pasted, chosen or dropped), live progress to 100%, the characters table, quotes with speakers,
the marked text, the chart, the JSON, native and HTML downloads, and the layout at phone width; under the page's
strict Content-Security-Policy, with no error in the browser's console. Screenshots go to the test's tmp folder
(and to docs/ with BOOKNLP_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from booknlp_api.engine.native import EXTENSIONS
from tests.conftest import TEST_KEY
from tests.epub_books import Epub, chapter_xhtml, wild_chapters
from tests.server_process import Server, running_server

CHROMIUM = "/usr/bin/chromium"
DOCS_SCREENSHOT = Path(__file__).parents[1] / "docs" / "page.png"
STEP_MS = 120_000
"""Longest wait for one step in the browser (a job on the tiny models takes seconds; the machine is shared)."""
CHAPTER = ("“My dear Mr. Bennet,” said his lady to him one day, “have you heard that Netherfield Park is let at "
           "last?” Mr. Bennet replied that he had not. “But it is,” returned she; “for Mrs. Long has just been "
           "here, and she told me all about it.” Mr. Bennet made no answer. Elizabeth laughed at her father.\n\n") * 6


@pytest.fixture(scope="module")
def server(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tiny_models_dir, tmp_path_factory.mktemp("page") / "data",
                        BOOKNLP_RESULT_CACHE="false") as server:
        server.start()
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: ./scripts/setup.sh installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield browser
        browser.close()


@pytest.fixture
def expected_errors() -> list[str]:
    """Console errors a test provokes on purpose (by a piece of their text): the 401s that tell the page that a
    key is needed, or that the one typed is wrong."""
    return ["status of 401"]


@pytest.fixture
def page(browser: Browser, server: Server, expected_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(base_url=str(server.client.base_url), viewport={"width": 1200, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    problems: list[str] = []
    page.on("console", lambda message: _note(problems, message, expected_errors))
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    yield page
    context.close()
    assert not problems, problems  # a CSP violation, a failed script or an uncaught error


def _note(problems: list[str], message: ConsoleMessage, expected: list[str]) -> None:
    if message.type == "error" and not any(text in message.text for text in expected):
        problems.append(message.text)


def _enter_key(page: Page) -> None:
    page.goto("/")
    expect(page.locator("#key-section")).to_be_visible()
    expect(page.locator("#submit-section")).to_be_hidden()
    page.fill("#key-input", "bnlp_not-a-key")
    page.click("#key-form button")
    expect(page.locator("#key-error")).to_contain_text("not valid")
    page.fill("#key-input", TEST_KEY)
    page.click("#key-form button")
    expect(page.locator("#submit-section")).to_be_visible()
    expect(page.locator("#model-select")).to_have_value("tiny")
    expect(page.locator("#model-note")).to_contain_text("meaningless")  # the tiny models are synthetic


def test_submit_a_chapter_follow_it_live_and_explore_the_result(page: Page, server: Server, tmp_path: Path) -> None:
    assert f"the web page: {server.client.base_url}/" in server.log.read_text(errors="replace")  # serve says where
    response = page.request.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    _enter_key(page)
    page.fill("#text-input", CHAPTER)
    page.fill("#book-id-input", "pride")
    server.hold.touch()  # the job waits before its first BERT batch: the page must show it running, not done
    try:
        page.click("#submit-button")
        expect(page.locator("#job-status")).to_have_text("running")
        expect(page.locator("#stages li").first).to_be_visible()
        assert page.locator("#progress-percent").inner_text() != "100%"
    finally:
        server.hold.unlink()
    expect(page.locator("#progress-percent")).to_have_text("100%")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#result-section")).to_be_visible()
    expect(page.locator("#synthetic-warning")).to_be_visible()
    result = server.client.get(f"/v1/jobs/{_job_id(server)}/result").json()

    rows = page.locator("#characters-table tbody tr")
    assert rows.count() == len(result["characters"]) > 0
    first = result["characters"][0]
    expect(rows.first.locator("td").first).to_have_text(first["name"])
    expect(rows.first.locator("td").nth(2)).to_have_text(str(first["mention_count"]))

    spoken = [quote for quote in result["quotes"] if quote["speaker_name"]]
    assert spoken, "the chapter's quotes got no speaker: nothing to find in the page"
    quotes = page.locator("#quotes li")
    assert quotes.count() == len(result["quotes"])
    expect(page.locator("#quotes .speaker").filter(has_text=spoken[0]["speaker_name"]).first).to_be_visible()
    speaker_id = spoken[0]["speaker_id"]
    page.select_option("#quote-filter", str(speaker_id))
    assert quotes.count() == sum(quote["speaker_id"] == speaker_id for quote in result["quotes"])

    marks = page.locator("#book-text mark.ent")
    assert marks.count() > 0
    expect(page.locator("#book-text")).to_contain_text("Netherfield Park is let at last")
    assert page.locator("#chart svg polyline").count() == min(6, len(result["characters"]))

    with page.expect_download() as download:
        page.click(".downloads button[data-format=json]")
    saved = tmp_path / "pride.json"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "pride.json"
    assert json.loads(saved.read_text(encoding="utf-8"))["book_id"] == "pride"
    job_id = _job_id(server)
    for result_format, name in (("native", "pride.zip"), ("html", "pride.html")):
        with page.expect_download() as download:
            page.click(f".downloads button[data-format={result_format}]")
        assert download.value.suggested_filename == name
        download.value.save_as(tmp_path / name)
        served = server.client.get(f"/v1/jobs/{job_id}/result", params={"format": result_format}).content
        assert (tmp_path / name).read_bytes() == served
    with zipfile.ZipFile(tmp_path / "pride.zip") as native:  # the six files of the whole pipeline
        assert sorted(native.namelist()) == sorted(f"pride.{extension}" for extension in EXTENSIONS)
    assert "<html" in (tmp_path / "pride.html").read_text(encoding="utf-8").lower()

    page.screenshot(path=str(tmp_path / "page-desktop.png"), full_page=True)
    if os.environ.get("BOOKNLP_UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)

    page.set_viewport_size({"width": 375, "height": 812})
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == 375, f"horizontal scroll at phone width: {widths}"
    page.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)
    assert (tmp_path / "page-phone.png").stat().st_size > 0


def test_an_epub_chosen_as_a_file_is_followed_by_polling_without_the_event_stream(
        page: Page, expected_errors: list[str], tmp_path: Path) -> None:
    expected_errors.append("net::ERR_FAILED")  # the stream refused below
    page.route("**/events", lambda route: _refuse(route))
    heading, paragraphs = wild_chapters(1)[0]
    book = tmp_path / "The Call of the Wild.epub"
    book.write_bytes(Epub().add("c0.xhtml", chapter_xhtml(heading, paragraphs[:6])).bytes())
    _enter_key(page)
    page.set_input_files("#file-input", str(book))
    expect(page.locator("#file-name")).to_contain_text("The Call of the Wild.epub")
    page.click("#submit-button")
    expect(page.locator("#progress-percent")).to_have_text("100%")
    expect(page.locator("#result-title")).to_have_text("The_Call_of_the_Wild")  # the book id from the file name
    expect(page.locator("#book-text")).to_contain_text(" ".join(paragraphs[0].split()[:8]))
    expect(page.locator("#characters-table tbody tr").first).to_be_visible()


def test_a_text_file_dropped_on_the_page_is_submitted_and_runs_to_100_percent(page: Page) -> None:
    _enter_key(page)
    # a real drop event carrying a File in its DataTransfer, as a drag from the desktop delivers it
    dropped = page.evaluate_handle("""(text) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], "emma.txt", {type: "text/plain"}));
        return transfer;
    }""", "“Hello,” said Emma to Harriet. Harriet smiled at Emma. " * 4)
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": dropped})
    expect(page.locator("#drop-zone")).to_have_class("drop-zone over")
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    expect(page.locator("#file-name")).to_contain_text("emma.txt")
    page.click("#submit-button")
    expect(page.locator("#progress-percent")).to_have_text("100%")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#result-title")).to_have_text("emma")
    expect(page.locator("#book-text")).to_contain_text("said Emma to Harriet")


def test_a_zip_of_books_becomes_a_batch_whose_books_can_each_be_explored(page: Page, tmp_path: Path) -> None:
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as books:
        books.writestr("pride.txt", CHAPTER)
        books.writestr("emma.txt", "“Hello,” said Emma to Harriet. Harriet smiled at Emma. " * 10)
    _enter_key(page)
    page.set_input_files("#file-input", str(archive))
    page.click("#submit-button")
    expect(page.locator("#progress-percent")).to_have_text("100%")
    expect(page.locator("#job-status")).to_have_text("2 books: 2 succeeded")
    explore = page.locator("#stages li").filter(has_text="emma").locator("button")
    explore.click()
    expect(page.locator("#result-title")).to_have_text("emma")
    expect(page.locator("#book-text")).to_contain_text("said Emma to Harriet")
    with page.expect_download() as download:
        page.click("#batch-downloads button[data-format=csv]")
    table = tmp_path / "corpus.csv"
    download.value.save_as(table)
    with table.open(encoding="utf-8", newline="") as rows:
        assert sorted(row["book"] for row in csv.DictReader(rows)) == ["emma", "pride"]


def _refuse(route: Route) -> None:
    route.abort()


def _job_id(server: Server) -> str:
    return str(server.client.get("/v1/jobs", params={"limit": 1}).json()["jobs"][0]["id"])


def test_the_page_works_offline_from_the_package() -> None:
    page_dir = Path(__file__).parents[1] / "booknlp_api" / "api" / "static"
    sources = "".join(path.read_text(encoding="utf-8") for path in page_dir.iterdir() if path.suffix != ".png")
    assert "http://" not in sources.replace("http://www.w3.org/2000/svg", "")
    assert "//cdn" not in sources and "<script>" not in sources and "style=" not in sources
