"""``/v1/batches``: many books in one call, one job each, followed and fetched together."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from booknlp_api.api.auth import UNAUTHORIZED, CallerDep, authenticate
from booknlp_api.api.batch_input import read_batch
from booknlp_api.api.batch_schemas import BatchesPublic, BatchPublic, BatchSummary
from booknlp_api.api.deps import RuntimeDep
from booknlp_api.api.event_stream import HEADERS, events_response, follow
from booknlp_api.api.job_input import FILE_FIELD, idempotency_key
from booknlp_api.api.job_schemas import JobOptions, form_field, text_part
from booknlp_api.api.ratelimit import batch_admission, batch_submitter
from booknlp_api.api.routes.jobs import MAX_OFFSET
from booknlp_api.api.runtime import Runtime
from booknlp_api.api.schemas import ErrorResponse
from booknlp_api.jobs.batch_results import batch_zip, corpus_rows

router = APIRouter(prefix="/v1/batches", tags=["batches"], dependencies=[Depends(authenticate)],
                   responses=UNAUTHORIZED)
BatchId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="The batch's id, as `POST /v1/batches` "
                                                                      "answered it.")]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


def _upload_body() -> dict[str, Any]:
    """The form described exactly as plain fields (no nulls, the text non-blank, the models found and the most
    books added by ``api.contract``); file parts (books, archives) are described in words."""
    form = JobOptions.model_json_schema()
    book = text_part("A book: a plain field (UTF-8 text) or a file part (text, EPUB, HTML; gzipped or not).")
    # One part is a string on the wire, several an array: both, so a form of one book is no type error.
    form["properties"] = {FILE_FIELD: {**book, "type": ["string", "array"], "items": book, "minItems": 1,
                                       "description": "Books, one part each (each plain field is a book named "
                                                      "`book`, `book-2`...), or one .zip / .tar.gz of books as a "
                                                      "file part."},
                          **{k: form_field(v) for k, v in form["properties"].items() if k != "book_id"}}
    form.update(required=[FILE_FIELD], title="BatchUpload")
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}}}


_NOT_FOUND = {404: _error("No such batch, or another key's batch.")}
_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The multipart body cannot be parsed (`invalid_form`)."),
    413: _error("Too many books, a book or the upload too large, or an archive that unpacks past the limits "
                "(`archive_too_large`)."),
    415: _error("The body is not multipart/form-data."),
    422: _error("Invalid options; an archive member that climbs out of the archive, is a link "
                "(`unsafe_archive_member`) or is no book file (`invalid_archive`); a book that does not decode "
                "(named in `details.book`); an Idempotency-Key reused for a different batch."),
    429: _error("The books would pass the key's characters per day: see `Retry-After`. (Books beyond the key's jobs "
                "at once are accepted and wait: status `waiting`.)"),
    503: _error("The queue has no room for the books queued at once; retry after `Retry-After` seconds."),
}
_RESULT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "`zip`: NAME.zip (native files) and NAME.json per succeeded book, and batch.csv; "
                         "`csv`: the corpus table, one row per book.",
          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}},
                      "text/csv": {"schema": {"type": "string"}}}},
    **_NOT_FOUND,
    409: _error("Some jobs are still queued or running; `details.unfinished` says how many."),
}


@router.post("", status_code=202, response_model=BatchPublic, responses=_SUBMIT_ERRORS,
             openapi_extra=_upload_body(), summary="Submit many books")
async def create_batch(request: Request, response: Response, runtime: RuntimeDep, caller: CallerDep) -> BatchPublic:
    """One job per book: several `file` parts, or one `.zip`/`.tar.gz` of books; the other options (as for
    jobs) as form fields. Each book's name (its file name without extensions) is its `book_id`. The whole
    batch counts against the key's characters per day at once; at most the key's jobs at once are queued or
    running at a time, the other books wait (`waiting`) and are queued as its earlier jobs end. With an
    `Idempotency-Key`, a retry returns the first batch."""
    books = await read_batch(request, runtime.settings)
    jobs, limits = runtime.jobs, runtime.rate_limits
    batch, created = await run_in_threadpool(
        runtime.batches.create, books, batch_submitter(jobs, limits, caller), batch_admission(jobs, limits, caller),
        caller.owner, idempotency_key(request))
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return BatchPublic.of(batch, jobs)


@router.get("", response_model=BatchesPublic, summary="List batches")
def list_batches(runtime: RuntimeDep, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                 offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> BatchesPublic:
    """The caller's batches (an admin key: every batch) newest first, a page at a time; each with its counts,
    progress and ETA (its books' jobs: `GET /v1/batches/{id}`)."""
    batches, total = runtime.batches.page(limit, offset, caller.scope)
    return BatchesPublic(batches=[BatchSummary.of(batch, runtime.jobs) for batch in batches], total=total,
                         limit=limit, offset=offset)


@router.get("/{batch_id}", response_model=BatchPublic, responses=_NOT_FOUND, summary="A batch's progress")
def get_batch(batch_id: BatchId, runtime: RuntimeDep, caller: CallerDep) -> BatchPublic:
    """Jobs counted by status, overall progress and ETA, and every book's job."""
    return BatchPublic.of(runtime.batches.get(batch_id, caller.scope), runtime.jobs)


@router.get("/{batch_id}/result", response_class=Response, responses=_RESULT_RESPONSES, summary="A batch's results")
def get_batch_result(batch_id: BatchId, runtime: RuntimeDep, caller: CallerDep,
                     result_format: Annotated[Literal["zip", "csv"], Query(alias="format")] = "zip") -> Response:
    """Once every job has ended: one zip streamed book by book (`format=zip`), or the corpus table (`format=csv`:
    book, tokens, entities, quotes, characters, top characters with mention counts...)."""
    batch = runtime.batches.get(batch_id, caller.scope)
    results = runtime.jobs.results
    if result_format == "csv":
        rows = corpus_rows(batch, results)
        first = next(rows)  # a batch still running is refused here, before the 200 is sent
        return StreamingResponse(_chain(first, rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.csv"'})
    stream = batch_zip(batch, results)
    first_bytes = next(stream)
    return StreamingResponse(_chain(first_bytes, stream), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.zip"'})


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


@router.delete("/{batch_id}", response_model=BatchPublic, responses=_NOT_FOUND, summary="Cancel a batch")
def cancel_batch(batch_id: BatchId, runtime: RuntimeDep, caller: CallerDep) -> BatchPublic:
    """Cancel every job of the batch that has not ended: waiting and queued ones at once, running ones at their
    next stage or batch boundary. Finished jobs and their results stay."""
    return BatchPublic.of(runtime.batches.cancel(batch_id, caller.scope), runtime.jobs)


_EVENTS = {
    200: events_response("`text/event-stream`. Events: `status` (the batch's counts, fraction and ETA, as in "
                         "`GET /v1/batches`; always the first event), `progress` (the same, when the counts or the "
                         "fraction move), `book` (a book that ended: its name and job), `end` (the finished batch; "
                         "the stream closes after it).", ["status", "progress", "book", "end"],
                         {"oneOf": [{"$ref": "#/components/schemas/BatchSummary"},
                                    {"$ref": "#/components/schemas/BatchBookPublic"}]}),
    **_NOT_FOUND,
}


@router.get("/{batch_id}/events", response_class=StreamingResponse, responses=_EVENTS,
            summary="A batch's progress, live (Server-Sent Events)")
async def batch_events(batch_id: BatchId, request: Request, runtime: RuntimeDep,
                       caller: CallerDep) -> StreamingResponse:
    """Follow a batch without polling: its counts and progress, and each book as it ends, as Server-Sent Events,
    closed when every book has ended."""
    first = await run_in_threadpool(_read, runtime, batch_id, caller.scope)  # a 404 comes before the stream starts
    stream = follow(request, runtime.jobs.finishes, first, lambda: _read(runtime, batch_id, caller.scope), _changes)
    return StreamingResponse(stream, media_type="text/event-stream", headers=HEADERS)


def _read(runtime: Runtime, batch_id: str, scope: str | None) -> BatchPublic:
    return BatchPublic.of(runtime.batches.get(batch_id, scope), runtime.jobs)


def _changes(shown: BatchPublic | None, batch: BatchPublic) -> list[tuple[str, str]]:
    summary = BatchSummary(**{name: getattr(batch, name) for name in BatchSummary.model_fields})
    events = []
    if shown is not None:
        ended = {book.name for book in shown.jobs if book.job.finished_at is not None}
        events += [("book", book.model_dump_json(by_alias=True)) for book in batch.jobs
                   if book.job.finished_at is not None and book.name not in ended]
    moved = shown is None or (shown.counts, round(shown.fraction, 3)) != (batch.counts, round(batch.fraction, 3))
    if batch.finished:
        events.append(("end", summary.model_dump_json(by_alias=True)))
    elif moved:
        events.append(("status" if shown is None else "progress", summary.model_dump_json(by_alias=True)))
    return events
