"""Texts and results kept in the job database (the PostgreSQL layout, run here on both databases):
stored compressed, read back as streams, copied for cache hits, deleted at expiry and swept when orphaned."""

from __future__ import annotations

import gzip
import io
import json
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from booknlp_api.jobs.database import Database
from booknlp_api.jobs.database_files import CHUNK_BYTES, DatabaseFiles
from booknlp_api.jobs.files import RESULT_JSON
from booknlp_api.jobs.tables import blobs
from tests.conftest import body_bytes as _bytes


@pytest.fixture
def files(tmp_path: Path, database_url: str) -> Iterator[DatabaseFiles]:
    database = Database(database_url)
    yield DatabaseFiles(tmp_path / "data", database)
    database.close()


def _stored(files: DatabaseFiles) -> dict[str, bytes]:
    with files._engine.begin() as conn:
        return {row.name: bytes(row.data) for row in conn.execute(select(blobs.c.name, blobs.c.data))}


def _run(files: DatabaseFiles, job_id: str, result: bytes = b'{"book_id": "b"}') -> Path:
    run = files.new_run(job_id)
    (run / "b.tokens").write_text("paragraph_ID\tsentence_ID\n0\t0\n")
    (run / "b.entities").write_text("COREF\tstart_token\n")
    (run / RESULT_JSON).write_bytes(result)
    return run


def test_a_text_is_stored_compressed_and_read_back_until_deleted(files: DatabaseFiles) -> None:
    text = "“Marley was dead,” to begin with. " * 1000
    files.save_text("j1", text)
    stored = _stored(files)["texts/j1"]
    assert gzip.decompress(stored).decode() == text and len(stored) < len(text.encode()) / 10
    assert files.read_text("j1") == text
    files.delete_text("j1")
    assert "texts/j1" not in _stored(files)
    assert list(files.texts.iterdir()) == []  # nothing on this machine's disk


def test_a_published_run_is_one_zip_and_gzipped_json_served_as_streams(files: DatabaseFiles) -> None:
    run = _run(files, "j1")
    name = files.publish(run)
    files.discard_run(run)
    assert set(_stored(files)) == {f"results/{name}/native.zip", f"results/{name}/result.json.gz"}
    assert _bytes(files.stored_json(name)) == b'{"book_id": "b"}'
    with zipfile.ZipFile(io.BytesIO(_bytes(files.native_zip(name)))) as archive:
        assert sorted(archive.namelist()) == ["b.entities", "b.tokens"]
        assert archive.read("b.tokens") == b"paragraph_ID\tsentence_ID\n0\t0\n"
    unpacked = files.result(name)  # the native files on this machine, for the HTML report and narrower JSON
    assert sorted(p.name for p in unpacked.iterdir()) == ["b.entities", "b.tokens"]


def test_a_cache_hit_gets_its_own_copy_and_expiry_deletes_only_its_own(files: DatabaseFiles) -> None:
    source = files.publish(_run(files, "src"))
    copy = files.copy_result(source, "hit", with_json=False)
    assert files.stored_json(copy) is None and _bytes(files.native_zip(copy)) == _bytes(files.native_zip(source))
    files.save_json(copy, b'{"narrower": true}')
    files.delete_result(source)
    assert not files.result(source).exists() and _bytes(files.native_zip(source)) == b""
    assert json.loads(_bytes(files.stored_json(copy))) == {"narrower": True}


def test_other_runs_are_dropped_and_orphans_swept(files: DatabaseFiles) -> None:
    kept, _ = files.publish(_run(files, "j1")), files.publish(_run(files, "j1"))  # the job ran twice
    files.drop_other_runs("j1", keep=kept)
    assert {name.split("/")[1] for name in _stored(files)} == {kept}
    files.save_text("live", "still queued")
    files.save_text("gone", "its job vanished")
    files.publish(_run(files, "crashed"))  # published, then the worker died before recording it
    files.sweep(keep_results={kept}, live_jobs={"live"}, min_age=300, now=time.time())
    assert len(_stored(files)) == 6  # younger than min_age: left alone
    files.sweep(keep_results={kept}, live_jobs={"live"}, min_age=300, now=time.time() + 3600)
    assert set(_stored(files)) == {f"results/{kept}/native.zip", f"results/{kept}/result.json.gz", "texts/live"}


def test_dropping_other_runs_spares_an_unpacking_of_the_kept_one(files: DatabaseFiles) -> None:
    # A client that sees "succeeded" may open the HTML report (which unpacks the result) while the worker is
    # still dropping the job's other runs: found as a FileNotFoundError in a fresh-clone suite run.
    kept, other = files.publish(_run(files, "j1")), files.publish(_run(files, "j1"))
    unpacking = files.results / f"{kept}.0badcafe.part"
    unpacking.mkdir(parents=True)
    (files.results / other).mkdir()
    files.drop_other_runs("j1", keep=kept)
    assert unpacking.is_dir() and not (files.results / other).exists()


def test_a_large_json_result_streams_in_bounded_memory(files: DatabaseFiles) -> None:
    tokens = [{"i": n, "word": f"w{n % 977}", "lemma": f"l{n % 541}", "pos": "NOUN"} for n in range(400_000)]
    result = json.dumps({"tokens": tokens}).encode()
    assert len(result) > 20_000_000
    name = files.publish(_run(files, "big", result))
    del tokens
    stream = files.stored_json(name)
    assert stream is not None and not isinstance(stream, Path | bytes)
    tracemalloc.start()
    size, largest = 0, 0
    for chunk in stream:
        size, largest = size + len(chunk), max(largest, len(chunk))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert size == len(result) and largest <= CHUNK_BYTES
    # A handful of chunk-sized buffers at once (read, copied, decompressed): independent of the result's size.
    assert peak < 8 * CHUNK_BYTES < size / 2, f"peak {peak} bytes while streaming {size}"
