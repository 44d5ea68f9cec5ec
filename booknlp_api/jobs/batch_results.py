"""A finished batch's results: one zip streamed book by book, and a corpus table (CSV).

The zip is written as it is sent: each book's native files (``NAME.zip``, its job's native zip as is)
and JSON result (``NAME.json``) are copied in chunks into a zip stream whose bytes are handed out after
every chunk, so memory holds one chunk, never the corpus. Books whose job did not succeed are listed
in ``batch.csv`` inside the zip with their status and error, and have no files.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from booknlp_api.jobs.batches import Batch, BatchBook
from booknlp_api.jobs.errors import BatchNotFinished, ResultExpired
from booknlp_api.jobs.files import Body
from booknlp_api.jobs.results import JobResults

TOP_CHARACTERS = 5
CSV_COLUMNS = ("book", "job_id", "status", "error", "book_id", "model", "synthetic_models", "characters_in_text",
               "tokens", "entities", "quotes", "characters", "top_characters")
_CHUNK = 1 << 20


class _Pipe(io.RawIOBase):
    """A write-only file whose bytes are taken away by the reader as they come (zipfile writes into it)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[bytes] = []
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.pending.append(chunk)
        self.written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.written

    def take(self) -> bytes:
        data, self.pending = b"".join(self.pending), []
        return data


def batch_zip(batch: Batch, results: JobResults) -> Iterator[bytes]:
    """The batch's results as zip bytes, produced as they are read (call only on a finished batch)."""
    _require_finished(batch)
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as archive:
        for book in batch.books:
            if book.job.status != "succeeded":
                continue
            try:
                native, analysis = results.native_zip(book.job), results.json(book.job)
            except ResultExpired:
                continue  # listed in batch.csv as expired
            for name, body, method in ((f"{book.name}.zip", native, zipfile.ZIP_STORED),
                                       (f"{book.name}.json", analysis, zipfile.ZIP_DEFLATED)):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                with archive.open(info, "w", force_zip64=True) as member:
                    for chunk in _chunks(body):
                        member.write(chunk)
                        yield pipe.take()
        archive.writestr(zipfile.ZipInfo("batch.csv", date_time=(1980, 1, 1, 0, 0, 0)),
                         "".join(corpus_rows(batch, results)))
    yield pipe.take()


def corpus_rows(batch: Batch, results: JobResults) -> Iterator[str]:
    """The corpus table as CSV lines: one row per book, in the batch's order (call only on a finished batch)."""
    _require_finished(batch)
    yield _csv_line(CSV_COLUMNS)
    for book in batch.books:
        yield _csv_line(_row(book, results))


def _row(book: BatchBook, results: JobResults) -> list[Any]:
    job = book.job
    row: dict[str, Any] = {"book": book.name, "job_id": job.id, "status": job.status,
                           "error": job.error.code if job.error else "", "book_id": job.book_id,
                           "model": job.model, "characters_in_text": job.text_chars}
    if job.status == "succeeded":
        try:
            result = json.loads(b"".join(_chunks(results.json(job))))
        except ResultExpired:
            row["status"] = "expired"
            return [row.get(column, "") for column in CSV_COLUMNS]
        characters = result.get("characters") or []
        ranked = sorted(characters, key=lambda c: -c["mention_count"])[:TOP_CHARACTERS]
        row.update(synthetic_models=result.get("synthetic_models"),
                   tokens=result.get("token_count", _count(result.get("tokens"))),
                   entities=_count(result.get("entities")), quotes=_count(result.get("quotes")),
                   characters=_count(result.get("characters")),
                   top_characters="; ".join(f"{c['name'] or '?'} ({c['mention_count']})" for c in ranked))
    return [row.get(column, "") for column in CSV_COLUMNS]


def _count(section: list[Any] | None) -> int | str:
    return "" if section is None else len(section)


def _csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


def _chunks(body: Body) -> Iterator[bytes]:
    if isinstance(body, Path):
        with body.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                yield chunk
    elif isinstance(body, bytes):
        yield body
    else:
        yield from body


def _require_finished(batch: Batch) -> None:
    unfinished = sum(not book.job.finished for book in batch.books)
    if unfinished:
        raise BatchNotFinished(batch.id, unfinished)
