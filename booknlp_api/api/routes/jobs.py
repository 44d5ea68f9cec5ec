"""``/v1/jobs``: whole books analysed in the background, with progress, cancellation and durable results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from booknlp_api.api.auth import UNAUTHORIZED, CallerDep, authenticate
from booknlp_api.api.bodies import body_response
from booknlp_api.api.deps import RuntimeDep
from booknlp_api.api.job_input import FILE_FIELD, read_submission
from booknlp_api.api.job_schemas import (
    JOB_LINKS,
    JobCreate,
    JobOptions,
    JobPublic,
    JobsPublic,
    form_field,
    text_part,
)
from booknlp_api.api.ratelimit import submit_within_limits
from booknlp_api.api.schemas import ErrorResponse
from booknlp_api.engine.result_schema import Section
from booknlp_api.jobs.records import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(authenticate)],
                   responses=UNAUTHORIZED)

ResultFormat = Literal["json", "native", "html"]
JobId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="The job's id, as `POST /v1/jobs` answered it.")]
MAX_OFFSET = 1_000_000_000
"""Paging stops here: far beyond any job store, and well inside SQLite's 64-bit integers."""

_CHAPTER = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
            "in want of a wife. “My dear Mr. Bennet,” said his lady to him one day, “have you heard that "
            "Netherfield Park is let at last?”")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


def _submission_body() -> dict[str, Any]:
    """Both ways to send a job, documented by hand: the handler reads the body itself to accept either."""
    form = JobOptions.model_json_schema()
    # The schema describes the text as a plain field exactly (a schema cannot say "bytes that decode"); a file
    # part carries the same text, or an EPUB or HTML book, and is described in words.
    form["properties"] = {FILE_FIELD: text_part(
                          "The book, as a plain field (UTF-8 text) or a file part (`curl -F file=@book.txt`): plain "
                          "text (UTF-8 unless the part's Content-Type declares a charset), EPUB (spine order, front "
                          "and back matter skipped) or HTML; a file part may be gzip-compressed."),
                          **{name: form_field(field) for name, field in form["properties"].items()}}
    form.update(required=[FILE_FIELD], title="JobUpload")
    examples = {
        "chapter": {"summary": "A chapter, every pipe", "value": {"text": _CHAPTER, "book_id": "pride"}},
        "gutenberg": {"summary": "A Gutenberg file, boilerplate removed, no tokens kept",
                      "value": {"text": "…", "book_id": "carol", "strip_gutenberg": True, "exclude": ["tokens"]}},
    }
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": JobCreate.model_json_schema(), "examples": examples},
        "multipart/form-data": {"schema": form},
    }}}


_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The body is not parseable JSON, or its multipart form cannot be parsed (`invalid_form`)."),
    413: _error("The text is longer than `max_job_chars` or larger than `max_job_bytes`."),
    415: _error("The body is neither JSON nor multipart/form-data."),
    422: _error("Invalid options, undecodable bytes (the offset is named), empty text, or an Idempotency-Key "
                "reused for a different request."),
    429: _error("Over one of the key's limits (requests per minute, characters per day, jobs at once): "
                "see `Retry-After`."),
    503: _error("`max_queued_jobs` are already waiting; retry after `Retry-After` seconds."),
}
_NOT_FOUND = {404: _error("No such job, or another key's job.")}
_SUBMITTED = {202: {"description": "The job, queued (or finished at once from the result cache).",
                    "links": JOB_LINKS}}
_RESULT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "`json`: the analysis (as `POST /v1/analyze`); `native`: a zip of BookNLP's own files; "
                         "`html`: BookNLP's character report.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnalysisResult"}},
                      "application/zip": {"schema": {"type": "string", "format": "binary"}},
                      "text/html": {"schema": {"type": "string"}}}},
    404: _error("No such job, or the format was not produced (the HTML report needs quote and coref)."),
    409: _error("The job has not succeeded (yet); `details.status` says where it is."),
    410: _error("The result expired (`expires_at`) and was deleted."),
}


@router.post("", status_code=202, response_model=JobPublic, responses={**_SUBMITTED, **_SUBMIT_ERRORS},
             openapi_extra=_submission_body(), summary="Submit a book", operation_id="create_job")
async def create_job(request: Request, response: Response, runtime: RuntimeDep, caller: CallerDep) -> JobPublic:
    """Queue a text for analysis and answer at once with the job. Send JSON (`JobCreate`) or upload the text
    as a file (multipart, field `file`, other options as form fields). With an `Idempotency-Key` header, a
    retried submission returns the job the first one created instead of a second job."""
    submission = await read_submission(request, runtime.settings)
    job, created = await run_in_threadpool(submit_within_limits, runtime.jobs, runtime.rate_limits, caller,
                                           submission)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    # Store reads stay off the event loop (as in every async route): the probes are answered on it.
    return JobPublic.of(job, await run_in_threadpool(runtime.jobs.position, job))


@router.get("", response_model=JobsPublic, summary="List jobs", operation_id="list_jobs")
def list_jobs(runtime: RuntimeDep, caller: CallerDep, status: JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20,
              offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> JobsPublic:
    """The caller's jobs (an admin key: every job) newest first, optionally only those with one `status`, a page
    at a time."""
    jobs, total = runtime.jobs.page(status, limit, offset, caller.scope)
    return JobsPublic(jobs=[JobPublic.of(job, runtime.jobs.position(job)) for job in jobs], total=total,
                      limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobPublic, responses=_NOT_FOUND, summary="A job's status and progress",
            operation_id="get_job")
def get_job(job_id: JobId, runtime: RuntimeDep, caller: CallerDep) -> JobPublic:
    """Status, place in the queue, progress (overall fraction, stage by stage, ETA), timestamps, and the
    error when it failed."""
    job = runtime.jobs.get(job_id, caller.scope)
    return JobPublic.of(job, runtime.jobs.position(job))


@router.get("/{job_id}/result", response_class=Response, responses=_RESULT_RESPONSES, summary="A job's result",
            operation_id="get_result")
async def get_result(job_id: JobId, runtime: RuntimeDep, caller: CallerDep,
                     result_format: Annotated[ResultFormat, Query(alias="format")] = "json",
                     sections: Annotated[list[Section] | None, Query()] = None,
                     exclude: Annotated[list[Section] | None, Query()] = None) -> Response:
    """The result of a succeeded job: typed JSON (`sections`/`exclude` narrow it), BookNLP's native files as
    a zip (`format=native`), or its HTML report (`format=html`)."""
    job, results = await run_in_threadpool(runtime.jobs.get, job_id, caller.scope), runtime.jobs.results
    if result_format == "native":
        return body_response(await run_in_threadpool(results.native_zip, job), "application/zip",
                             filename=f"{job.book_id}.zip")
    if result_format == "html":
        return body_response(await run_in_threadpool(results.html, job), "text/html; charset=utf-8")
    return body_response(await run_in_threadpool(results.json, job, sections, exclude or ()), "application/json")


_CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A queued job, now `cancelled`."},
    202: {"model": JobPublic, "description": "A running job asked to stop: still `running`, with `cancel_requested`; "
                                             "it stops at its next stage or BERT batch boundary."},
    **_NOT_FOUND,
    409: _error("The job has ended."),
}


@router.delete("/{job_id}", response_model=JobPublic, responses=_CANCEL_RESPONSES, summary="Cancel a job",
               operation_id="cancel_job")
def cancel_job(job_id: JobId, response: Response, runtime: RuntimeDep, caller: CallerDep) -> JobPublic:
    """Cancel a queued job (200, `cancelled`), or ask a running one to stop at its next stage or batch
    boundary (202, still `running` with `cancel_requested`); the worker then takes the next job."""
    job = runtime.jobs.cancel(job_id, caller.scope)
    if job.status == "running":
        response.status_code = 202
    return JobPublic.of(job, runtime.jobs.position(job))

