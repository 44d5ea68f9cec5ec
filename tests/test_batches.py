"""Batches: many books in one call (files or an archive), counted, cancelled and fetched together.

Archive safety is tested on the reader (engine.book_archive); the routes through the app and one worker on
the tiny models (pipeline `supersense`, the fast one: the analysis is not the point here).
"""

from __future__ import annotations

import csv
import io
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benchmarks.corpus import text_path
from booknlp_api.config import Settings
from booknlp_api.engine.book_archive import (
    ArchiveLimits,
    ArchiveRefused,
    ArchiveTooLarge,
    UnsafeArchiveMember,
    books_in_archive,
)
from tests.conftest import AUTH, TEST_KEY, wait_until_ready
from tests.epub_books import Epub, chapter_xhtml, wild_epub

LIMITS = ArchiveLimits(max_members=10, max_total_bytes=2_000_000, max_member_bytes=1_000_000, max_ratio=50)
WILD = text_path("the_call_of_the_wild.txt").read_text(encoding="utf-8")
CAROL = text_path("a_christmas_carol_gutenberg.txt").read_bytes()
OTHER_KEY = "bnlp_another-key-with-two-jobs-at-once"


def _zip(members: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if modes and name in modes:
                info.external_attr = modes[name] << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
    return buffer.getvalue()


def test_books_come_out_of_a_zip_and_a_tar_gz_in_order_skipping_folders_and_mac_metadata() -> None:
    members = {"corpus/b.txt": b"Buck", "corpus/a.epub": wild_epub(1)[0], "__MACOSX/corpus/._b.txt": b"\0"}
    assert [b.name for b in books_in_archive(_zip(members), "c.zip", LIMITS)] == ["corpus/b.txt", "corpus/a.epub"]
    assert [(b.name, b.data) for b in books_in_archive(_tar_gz({"x/one.txt": b"1", "two.html": b"<p>2</p>"}),
                                                       "c.tar.gz", LIMITS)] == [("x/one.txt", b"1"),
                                                                                ("two.html", b"<p>2</p>")]


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:\\evil.txt"])
def test_member_names_that_climb_out_are_refused(name: str) -> None:
    with pytest.raises(UnsafeArchiveMember, match="outside the archive"):
        books_in_archive(_zip({name: b"x"}), "c.zip", LIMITS)
    with pytest.raises(UnsafeArchiveMember):
        books_in_archive(_tar_gz({name: b"x"}), "c.tar.gz", LIMITS)


def test_links_and_non_book_members_are_refused() -> None:
    with pytest.raises(UnsafeArchiveMember, match="is a link"):
        books_in_archive(_zip({"book.txt": b"/etc/passwd"}, {"book.txt": 0o120777}), "c.zip", LIMITS)
    with pytest.raises(UnsafeArchiveMember, match="is a link"):
        books_in_archive(_tar_gz({"a.txt": b"a"}, links=("b.txt",)), "c.tar.gz", LIMITS)
    with pytest.raises(ArchiveRefused, match=r"'tool\.exe' is not a book file"):
        books_in_archive(_zip({"a.txt": b"a", "tool.exe": b"MZ"}), "c.zip", LIMITS)
    with pytest.raises(ArchiveRefused, match="not a readable"):
        books_in_archive(b"PK\x03\x04 broken", "c.zip", LIMITS)


def test_archive_bombs_are_refused_by_ratio_size_and_member_count() -> None:
    bomb = _zip({"bomb.txt": b"a" * 900_000})
    assert len(bomb) < 5_000
    with pytest.raises(ArchiveTooLarge, match="times its size"):
        books_in_archive(bomb, "c.zip", LIMITS)
    with pytest.raises(ArchiveTooLarge, match="times its compressed size"):  # a tar has no sizes up front
        books_in_archive(_tar_gz({"bomb.txt": b"a" * 900_000}), "c.tar.gz", LIMITS)
    with pytest.raises(ArchiveTooLarge, match="more than 500000 bytes"):  # four real chapters-worth of text
        books_in_archive(_zip({f"{i}.txt": WILD.encode()[:150_000] for i in range(4)}), "c.zip",
                         ArchiveLimits(10, 500_000, 1_000_000, 1e9))
    with pytest.raises(ArchiveTooLarge, match="more than 10 members"):
        books_in_archive(_zip({f"{i}.txt": b"x" for i in range(11)}), "c.zip", LIMITS)


@pytest.fixture(scope="module")
def client(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from booknlp_api.api.app import create_app

    data_dir = tmp_path_factory.mktemp("batch-data")
    keys = data_dir / "api-keys"
    keys.write_text(f"tests {TEST_KEY} rate_limit=100000/minute max_active_jobs=100000\n"
                    f"other {OTHER_KEY} max_active_jobs=2\n", encoding="utf-8")
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=data_dir, shutdown_grace_seconds=0,
                        api_keys_file=keys, max_batch_books=20)
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=AUTH) as client:
        wait_until_ready(client)
        yield client


def _wait_finished(client: TestClient, batch_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if batch["finished"]:
            return batch
        time.sleep(0.1)
    pytest.fail(f"batch {batch_id} never finished")


def test_a_zip_of_books_makes_one_job_each_and_serves_one_zip_and_a_corpus_table(client: TestClient) -> None:
    epub, epub_text = wild_epub(chapters=1)
    archive = _zip({"corpus/wild.epub": epub, "corpus/carol.txt": CAROL[:6_000],
                    "corpus/page.html": b"<p>Buck met Spitz.</p>"})
    sent = client.post("/v1/batches", files={"file": ("corpus.zip", archive, "application/zip")},
                       data={"pipeline": "entity,supersense", "strip_gutenberg": "true"},
                       headers={"Idempotency-Key": "corpus-1"})
    assert sent.status_code == 202, sent.text
    batch = sent.json()
    assert sent.headers["location"] == batch["links"]["self"] == f"/v1/batches/{batch['id']}"
    assert [b["name"] for b in batch["jobs"]] == ["wild", "carol", "page"]
    assert [b["job"]["book_id"] for b in batch["jobs"]] == ["wild", "carol", "page"]
    assert batch["jobs"][0]["job"]["text_chars"] == len(epub_text) and batch["books"] == 3
    assert sum(batch["counts"].values()) == 3
    early = client.get(f"{batch['links']['self']}/result")
    if early.status_code == 409:  # unless the worker was very quick
        assert early.json()["error"]["code"] == "batch_not_finished"
    again = client.post("/v1/batches", files={"file": ("corpus.zip", archive, "application/zip")},
                        data={"pipeline": "entity,supersense", "strip_gutenberg": "true"},
                        headers={"Idempotency-Key": "corpus-1"})
    assert again.json()["id"] == batch["id"] and again.headers["idempotent-replayed"] == "true"
    done = _wait_finished(client, batch["id"])
    assert done["counts"]["succeeded"] == 3 and done["fraction"] == 1.0 and done["eta_seconds"] == 0.0

    result = client.get(batch["links"]["result"])
    assert result.status_code == 200 and result.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(result.content)) as bundle:
        assert sorted(bundle.namelist()) == sorted(["wild.zip", "wild.json", "carol.zip", "carol.json", "page.zip",
                                                    "page.json", "batch.csv"])
        wild = client.get(batch["jobs"][0]["job"]["links"]["result"], params={"format": "native"}).content
        assert bundle.read("wild.zip") == wild
        assert bundle.read("carol.json") == client.get(batch["jobs"][1]["job"]["links"]["result"]).content
        table = bundle.read("batch.csv").decode()
    rows = list(csv.DictReader(io.StringIO(client.get(batch["links"]["table"]).text)))
    assert client.get(batch["links"]["table"]).text == table
    assert [(r["book"], r["status"]) for r in rows] == [("wild", "succeeded"), ("carol", "succeeded"),
                                                        ("page", "succeeded")]
    carol = client.get(batch["jobs"][1]["job"]["links"]["result"]).json()
    assert int(rows[1]["tokens"]) == carol["token_count"] and int(rows[1]["entities"]) == len(carol["entities"])
    assert rows[0]["synthetic_models"] == "True"  # random-weight models: the counts mean nothing linguistically


def test_several_file_parts_make_a_batch_and_delete_cancels_what_has_not_finished(client: TestClient) -> None:
    files = [("file", (f"wild{i}.txt", WILD[i * 20_000:(i + 1) * 20_000].encode(), "text/plain")) for i in range(4)]
    sent = client.post("/v1/batches", files=files, data={"pipeline": "entity,quote,coref", "cache": "false"})
    assert sent.status_code == 202, sent.text
    batch_id = sent.json()["id"]
    cancelled = client.delete(f"/v1/batches/{batch_id}")
    assert cancelled.status_code == 200
    done = _wait_finished(client, batch_id)
    assert done["counts"]["cancelled"] >= 3 and done["counts"]["queued"] == done["counts"]["running"] == 0
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{batch_id}/result?format=csv").text)))
    assert {r["status"] for r in rows} <= {"cancelled", "succeeded"} and len(rows) == 4


def test_batches_belong_to_their_key_and_count_against_its_limits(client: TestClient) -> None:
    mine = client.post("/v1/batches", files={"file": ("a.txt", b"Buck ran.", "text/plain")},
                       data={"pipeline": "supersense"}).json()
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        refused = client.request(method, f"/v1/batches/{mine['id']}{path}", headers=other)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "batch_not_found"
    three = [("file", (f"{n}.txt", b"Buck ran.", "text/plain")) for n in "abc"]
    over = client.post("/v1/batches", files=three, headers=other)
    assert over.status_code == 429 and over.json()["error"]["code"] == "too_many_active_jobs"
    assert "retry-after" in over.headers


def test_bad_batches_get_clean_errors(client: TestClient) -> None:
    def post(archive: bytes, name: str = "c.zip") -> Any:
        return client.post("/v1/batches", files={"file": (name, archive, "application/octet-stream")})

    traversal = post(_zip({"../../etc/cron.d/x.txt": b"x"}))
    assert traversal.status_code == 422 and traversal.json()["error"]["code"] == "unsafe_archive_member"
    assert traversal.json()["error"]["details"]["member"] == "../../etc/cron.d/x.txt"
    link = post(_tar_gz({"a.txt": b"a"}, links=("b.txt",)), "c.tar.gz")
    assert link.status_code == 422 and link.json()["error"]["code"] == "unsafe_archive_member"
    binary = post(_zip({"a.txt": b"a", "cover.jpg": b"\xff\xd8"}))
    assert binary.status_code == 422 and binary.json()["error"]["code"] == "invalid_archive"
    bomb = post(_zip({"bomb.txt": b"a" * 5_000_000}))
    assert bomb.status_code == 413 and bomb.json()["error"]["code"] == "archive_too_large"
    many = post(_zip({f"{i}.txt": b"x" for i in range(21)}))
    assert many.status_code == 413
    undecodable = post(_zip({"fine.txt": b"ok", "bad.txt": b"Scrooge\xff"}))
    assert undecodable.status_code == 422 and undecodable.json()["error"]["details"]["book"] == "bad.txt"
    windows = Epub().add("c.xhtml", chapter_xhtml("Chapter I.", ["“Café”"]).encode("cp1252")).bytes()  # says UTF-8
    epub = post(_zip({"fine.txt": b"ok", "bad.epub": windows}))
    assert epub.status_code == 422 and epub.json()["error"]["code"] == "undecodable_text"
    assert epub.json()["error"]["details"]["book"] == "bad.epub" and "c.xhtml" in epub.json()["error"]["message"]
    assert client.post("/v1/batches", json={"text": "x"}).status_code == 415
    assert client.get("/v1/batches/nope").status_code == 404
