"""Texts and results in the job database (PostgreSQL), so that processes on any machine need only its URL.

    texts/<job id>                       the submitted text, gzip-compressed UTF-8, until the job finishes
    results/<job id>.<run>/native.zip    BookNLP's native files as one zip
    results/<job id>.<run>/result.json.gz  the JSON result, gzip-compressed

A run still writes into a local scratch folder (``work/``); publishing stores its zip and JSON as
blobs in one transaction, and the job record (``JobStore.finish``) remains the switch. Reads are
streamed: a result comes out of the database ``CHUNK_BYTES`` at a time (``substring`` on a column
stored uncompressed by PostgreSQL, since the bytes are compressed already) and the JSON is
decompressed on the way, so a novel's 50 MB result is never whole in one process's memory. The HTML
report and narrower JSON results are built from the native files, which are unpacked once per
machine into ``cache/<run>/`` under the data folder.
"""

from __future__ import annotations

import gzip
import shutil
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import delete, func, insert, literal, select

from booknlp_api.jobs.database import Database
from booknlp_api.jobs.files import RESULT_JSON, Body, JobFiles, native_files_in, zip_files
from booknlp_api.jobs.tables import blobs

CHUNK_BYTES = 1 << 20
_ZIP, _JSON = "native.zip", "result.json.gz"


def _text(job_id: str) -> str:
    return f"texts/{job_id}"


def _result(name: str, part: str) -> str:
    return f"results/{name}/{part}"


class DatabaseFiles(JobFiles):
    def __init__(self, data_dir: Path, database: Database) -> None:
        super().__init__(data_dir)
        self.results = data_dir / "cache"  # unpacked native files: a per-machine cache of what the database holds
        self.results.mkdir(parents=True, exist_ok=True)
        self._database = database
        self._engine = database.engine

    # -- blobs ------------------------------------------------------------------------------------
    def _put(self, items: dict[str, bytes]) -> None:
        now = time.time()
        with self._engine.begin() as conn:
            conn.execute(delete(blobs).where(blobs.c.name.in_(list(items))))
            for name, data in items.items():
                conn.execute(insert(blobs).values(name=name, data=data, created_at=now))

    def _chunks(self, name: str) -> Iterator[bytes]:
        offset = 1
        while True:
            with self._database.reading() as conn:
                chunk = conn.execute(select(func.substring(blobs.c.data, offset, CHUNK_BYTES))
                                     .where(blobs.c.name == name)).scalar()
            if not chunk:
                return
            yield bytes(chunk)
            offset += len(chunk)

    def _exists(self, name: str) -> bool:
        with self._database.reading() as conn:
            return conn.execute(select(func.count()).select_from(blobs).where(blobs.c.name == name)).scalar() == 1

    def _delete(self, *conditions: object) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(blobs).where(*conditions))  # type: ignore[arg-type]

    # -- texts ------------------------------------------------------------------------------------
    def save_text(self, job_id: str, text: str) -> None:
        self._put({_text(job_id): gzip.compress(text.encode("utf-8"), compresslevel=6)})

    def read_text(self, job_id: str) -> str:
        return gzip.decompress(b"".join(self._chunks(_text(job_id)))).decode("utf-8")

    def delete_text(self, job_id: str) -> None:
        self._delete(blobs.c.name == _text(job_id))

    # -- results ----------------------------------------------------------------------------------
    def publish(self, run: Path) -> str:
        """Store a finished run's native files (one zip) and JSON (gzip) as blobs; the name to record in the job."""
        archive = run.with_name(f"{run.name}.zip")
        try:
            zip_files(native_files_in(run), archive)
            items = {_result(run.name, _ZIP): archive.read_bytes()}
        finally:
            archive.unlink(missing_ok=True)
        if (run / RESULT_JSON).is_file():
            items[_result(run.name, _JSON)] = gzip.compress((run / RESULT_JSON).read_bytes(), compresslevel=6)
        self._put(items)
        return run.name

    def result(self, name: str) -> Path:
        """The run's native files unpacked on this machine (on first use), for the HTML report and narrower JSON."""
        folder = self.results / name
        if not folder.is_dir():
            partial = self.results / f"{name}.{uuid.uuid4().hex[:8]}.part"
            partial.mkdir()
            archive = partial / _ZIP
            with archive.open("wb") as out:
                for chunk in self._chunks(_result(name, _ZIP)):
                    out.write(chunk)
            if not archive.stat().st_size:  # deleted (expired): nothing to unpack
                shutil.rmtree(partial, ignore_errors=True)
                return folder
            with zipfile.ZipFile(archive) as unpacked:
                unpacked.extractall(partial)
            archive.unlink()
            try:
                partial.rename(folder)
            except OSError:  # another thread unpacked it first
                shutil.rmtree(partial, ignore_errors=True)
        return folder

    def stored_json(self, name: str) -> Body | None:
        key = _result(name, _JSON)
        return _gunzip(self._chunks(key)) if self._exists(key) else None

    def save_json(self, name: str, data: bytes) -> None:
        self._put({_result(name, _JSON): gzip.compress(data, compresslevel=6)})

    def native_zip(self, name: str) -> Body:
        return self._chunks(_result(name, _ZIP))

    def copy_result(self, source: str, job_id: str, *, with_json: bool) -> str:
        """A cache hit's own copy of an earlier result, copied inside the database."""
        name = f"{job_id}.{uuid.uuid4().hex[:12]}"
        with self._engine.begin() as conn:
            for part in (_ZIP, _JSON) if with_json else (_ZIP,):
                copy = select(literal(_result(name, part)), blobs.c.data, literal(time.time()))
                conn.execute(insert(blobs).from_select(["name", "data", "created_at"],
                                                       copy.where(blobs.c.name == _result(source, part))))
        return name

    def delete_result(self, name: str) -> None:
        self._delete(blobs.c.name.in_([_result(name, _ZIP), _result(name, _JSON)]))
        super().delete_result(name)

    def drop_other_runs(self, job_id: str, keep: str) -> None:
        super().drop_other_runs(job_id, keep)
        self._delete(blobs.c.name.like(f"results/{job_id}.%"), ~blobs.c.name.like(f"results/{keep}/%"))

    def sweep(self, *, keep_results: set[str], live_jobs: set[str], min_age: float, now: float) -> int:
        """Also delete blobs no job refers to (left by a crash) once older than ``min_age``."""
        gone = super().sweep(keep_results=keep_results, live_jobs=live_jobs, min_age=min_age, now=now)
        with self._database.reading() as conn:
            names = conn.execute(select(blobs.c.name).where(blobs.c.created_at < now - min_age)).scalars().all()
        orphans = [name for name in names if _orphan(name, keep_results, live_jobs)]
        if orphans:
            self._delete(blobs.c.name.in_(orphans))
        return gone + len(orphans)


def _orphan(name: str, keep_results: set[str], live_jobs: set[str]) -> bool:
    kind, _, rest = name.partition("/")
    key = rest.split("/")[0]
    return key.split(".")[0] not in live_jobs and (kind == "texts" or key not in keep_results)


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompressed pieces of at most ``CHUNK_BYTES`` each (JSON compresses ~10x: one chunk in is many out)."""
    inflate = zlib.decompressobj(wbits=31)  # gzip framing
    for chunk in chunks:
        pending = chunk
        while pending:
            if data := inflate.decompress(pending, CHUNK_BYTES):
                yield data
            pending = inflate.unconsumed_tail
    if tail := inflate.flush():
        yield tail
