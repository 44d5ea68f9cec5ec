"""Batches: many books in one call (files or an archive), counted, cancelled and fetched together.

Archive safety is tested on the reader (engine.book_archive); the routes through the app and one worker on
the tiny models (pipeline `supersense`, the fast one: the analysis is not the point here), on both databases.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import tarfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from benchmarks.corpus import text_path
from booknlp_api.config import Settings
from booknlp_api.engine.book_archive import (
    ArchiveLimits,
    ArchiveRefused,
    ArchiveTooLarge,
    UnsafeArchiveMember,
    books_in_archive,
)
from booknlp_api.jobs.store import JobStore, WorkerRecord
from booknlp_api.jobs.tables import jobs
from tests.conftest import AUTH, BACKENDS, TEST_KEY, backend_setting, server_sent_events, wait_until_ready
from tests.epub_books import Epub, chapter_xhtml, wild_epub

LIMITS = ArchiveLimits(max_members=10, max_total_bytes=2_000_000, max_member_bytes=1_000_000, max_ratio=50)
WILD = text_path("the_call_of_the_wild.txt").read_text(encoding="utf-8")
CAROL = text_path("a_christmas_carol_gutenberg.txt").read_bytes()
OTHER_KEY = "bnlp_another-key-with-two-jobs-at-once"
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
THRIFTY_KEY = "bnlp_a-key-with-few-characters-a-day"
ADMIN_KEY = "bnlp_the-admin-key-that-sees-every-batch"


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


@pytest.fixture(scope="module", params=BACKENDS)
def client(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[TestClient]:
    from booknlp_api.api.app import create_app

    data_dir = tmp_path_factory.mktemp("batch-data")
    keys = data_dir / "api-keys"
    keys.write_text(f"tests {TEST_KEY} rate_limit=100000/minute max_active_jobs=100000\n"
                    f"other {OTHER_KEY} max_active_jobs=2\n"
                    f"thrifty {THRIFTY_KEY} max_chars_per_day=20\n"
                    f"boss {ADMIN_KEY} admin\n", encoding="utf-8")
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=data_dir, shutdown_grace_seconds=0,
                        api_keys_file=keys, max_batch_books=20, database_url=backend_setting(request))
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=AUTH) as client:
        wait_until_ready(client)
        yield client


def _wait_finished(client: TestClient, batch_id: str, timeout: float = 300,
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}", headers=headers).json()
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


def _books(count: int, tag: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Distinct short books (no two the same, so none is answered from the result cache)."""
    return [("file", (f"{tag}{i}.txt", f"Buck ran to the {tag} river {i} times. Spitz followed.".encode(),
                      "text/plain")) for i in range(count)]


def test_batches_belong_to_their_key_and_count_against_its_characters_per_day(client: TestClient) -> None:
    mine = client.post("/v1/batches", files={"file": ("a.txt", b"Buck ran.", "text/plain")},
                       data={"pipeline": "supersense"}).json()
    for method, path in (("GET", ""), ("GET", "/result"), ("GET", "/events"), ("DELETE", "")):
        refused = client.request(method, f"/v1/batches/{mine['id']}{path}", headers=OTHER)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "batch_not_found"
    over = client.post("/v1/batches", files=_books(3, "x"), headers={"Authorization": f"Bearer {THRIFTY_KEY}"})
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert "retry-after" in over.headers


def test_a_batch_larger_than_the_keys_jobs_at_once_waits_and_runs_within_it(client: TestClient) -> None:
    store = client.app.state.runtime.jobs.store  # type: ignore[attr-defined]
    most, done = 0, threading.Event()

    def watch() -> None:  # the store, read as fast as it answers while the batch runs
        nonlocal most
        while not done.is_set():
            most = max(most, store.count_active("other"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        sent = client.post("/v1/batches", files=_books(6, "six"), data={"pipeline": "supersense", "cache": "false"},
                           headers=OTHER)
        assert sent.status_code == 202, sent.text
        batch = sent.json()
        assert batch["books"] == 6 and batch["counts"]["waiting"] >= 4  # at most 2 queued or running
        assert {b["job"]["status"] for b in batch["jobs"][2:]} == {"waiting"}  # the first books go first
        done_batch = _wait_finished(client, batch["id"], headers=OTHER)
    finally:
        done.set()
        watcher.join(10)
    assert most == 2  # the key's limit, reached and never passed
    assert done_batch["counts"]["succeeded"] == 6 and done_batch["eta_seconds"] == 0.0
    result = client.get(batch["links"]["result"], headers=OTHER)
    with zipfile.ZipFile(io.BytesIO(result.content)) as bundle:
        assert sorted(n for n in bundle.namelist() if n.endswith(".json")) == [f"six{i}.json" for i in range(6)]
    waiting = client.get("/v1/jobs", params={"status": "waiting"}, headers=OTHER).json()
    assert waiting["total"] == 0


def _hold_places(store: JobStore, owner: str, count: int) -> list[str]:
    """``count`` jobs of ``owner`` recorded as running on a live worker (this process) that never ends them."""
    now = time.time()
    store.register_worker(WorkerRecord(id="holder", host=socket.gethostname(), pid=os.getpid(), started_at=now,
                                       heartbeat_at=now))
    ids = [uuid.uuid4().hex for _ in range(count)]
    with store.database.engine.begin() as conn:  # one statement: recovery never sees them half-recorded
        conn.execute(insert(jobs), [{"id": job_id, "status": "running", "book_id": "held", "model": "tiny",
                                     "pipeline": '["entity"]', "text_chars": 1, "text_offset": 0,
                                     "cache_key": job_id, "created_at": now, "started_at": now, "owner": owner,
                                     "worker_id": "holder", "heartbeat_at": now} for job_id in ids])
    return ids


def test_cancelling_a_batch_cancels_its_waiting_books(client: TestClient) -> None:
    store: JobStore = client.app.state.runtime.jobs.store  # type: ignore[attr-defined]
    held = _hold_places(store, "other", 2)  # the key's two places are taken: every book of the batch waits
    try:
        sent = client.post("/v1/batches", files=_books(5, "stop"), data={"pipeline": "supersense"}, headers=OTHER)
        assert sent.status_code == 202
        batch = sent.json()
        assert batch["counts"]["waiting"] == 5 and not batch["finished"] and batch["eta_seconds"] is None
        waiting = batch["jobs"][0]["job"]
        assert waiting["status"] == "waiting" and waiting["queue_position"] is None
        refused = client.get(f"/v1/jobs/{waiting['id']}/result", headers=OTHER)
        assert refused.status_code == 409 and "waiting" in refused.json()["error"]["message"]
        cancelled = client.delete(f"/v1/batches/{batch['id']}", headers=OTHER).json()
        assert cancelled["finished"] and cancelled["counts"]["cancelled"] == 5
        assert client.get(f"/v1/jobs/{waiting['id']}", headers=OTHER).json()["status"] == "cancelled"
    finally:
        for job_id in held:
            store.finish(job_id, "holder", "cancelled", now=time.time(), expires_at=time.time())
        store.forget_worker("holder")
    assert store.count_active("other") == 0 and store.count("waiting") == 0  # none was queued in their place


def test_batches_are_listed_newest_first_to_their_key_and_all_to_an_admin(client: TestClient) -> None:
    ids = [client.post("/v1/batches", files=_books(1, f"list{i}"), data={"pipeline": "supersense"},
                       headers=OTHER).json()["id"] for i in range(3)]
    mine = client.post("/v1/batches", files=_books(1, "mine"), data={"pipeline": "supersense"}).json()["id"]
    listed = client.get("/v1/batches", params={"limit": 2}, headers=OTHER).json()
    assert [b["id"] for b in listed["batches"]] == ids[::-1][:2] and listed["limit"] == 2
    everything = client.get("/v1/batches", params={"limit": 100}, headers=OTHER).json()
    assert mine not in {b["id"] for b in everything["batches"]} and everything["total"] == len(everything["batches"])
    assert set(ids) <= {b["id"] for b in everything["batches"]}
    assert "jobs" not in everything["batches"][0] and everything["batches"][0]["counts"]["succeeded"] >= 0
    second = client.get("/v1/batches", params={"limit": 1, "offset": 1}, headers=OTHER).json()
    assert [b["id"] for b in second["batches"]] == [ids[1]]
    admin = client.get("/v1/batches", params={"limit": 100}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert {mine, *ids} <= {b["id"] for b in admin.json()["batches"]}
    assert client.get("/v1/batches", params={"limit": 0}).status_code == 422


def _batch_events(client: TestClient, batch_id: str) -> list[tuple[str, dict[str, Any]]]:
    with client.stream("GET", f"/v1/batches/{batch_id}/events", headers=OTHER) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return server_sent_events(response.iter_lines())


def test_a_batch_streams_its_counts_and_each_books_end_and_closes_when_all_have_ended(client: TestClient) -> None:
    sent = client.post("/v1/batches", files=_books(4, "live"), data={"pipeline": "entity", "cache": "false"},
                       headers=OTHER).json()
    events = _batch_events(client, sent["id"])
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1, kinds
    first = events[0][1]
    if kinds[0] == "status":  # unless every book had ended before the stream began
        ended_first = sum(n for status, n in first["counts"].items() if status in ("succeeded", "failed", "cancelled"))
        books = [data["name"] for kind, data in events if kind == "book"]
        assert len(books) == len(set(books)) == 4 - ended_first
        assert all(data["job"]["finished_at"] for kind, data in events if kind == "book")
        fractions = [data["fraction"] for kind, data in events if kind != "book"]
        assert fractions == sorted(fractions)
    end = events[-1][1]
    assert end["finished"] and end["counts"]["succeeded"] == 4 and end["fraction"] == 1.0 and "jobs" not in end
    again = _batch_events(client, sent["id"])  # a finished batch: one end event, then the stream closes
    assert [kind for kind, _ in again] == ["end"]


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
    # more file parts than the contract's maxItems: a validation error, as the schema says (archives: 413)
    parts = client.post("/v1/batches", files=[("file", (None, "x")) for _ in range(21)])
    assert parts.status_code == 422 and parts.json()["error"]["code"] == "validation_error"
    assert parts.json()["error"]["details"][0]["loc"] == ["body", "file"]
    undecodable = post(_zip({"fine.txt": b"ok", "bad.txt": b"Scrooge\xff"}))
    assert undecodable.status_code == 422 and undecodable.json()["error"]["details"]["book"] == "bad.txt"
    windows = Epub().add("c.xhtml", chapter_xhtml("Chapter I.", ["“Café”"]).encode("cp1252")).bytes()  # says UTF-8
    epub = post(_zip({"fine.txt": b"ok", "bad.epub": windows}))
    assert epub.status_code == 422 and epub.json()["error"]["code"] == "undecodable_text"
    assert epub.json()["error"]["details"]["book"] == "bad.epub" and "c.xhtml" in epub.json()["error"]["message"]
    assert client.post("/v1/batches", json={"text": "x"}).status_code == 415
    assert client.get("/v1/batches/nope").status_code == 422  # not an id at all
    assert client.get(f"/v1/batches/{'0' * 32}").json()["error"]["code"] == "batch_not_found"
