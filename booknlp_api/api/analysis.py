"""One analysis while the client waits: checked on the event loop, then run as a job by the worker.

A job that has not finished within ``analyze_wait_seconds`` is answered with 202 and the job itself,
so the work goes on and its result can be fetched later from the job API.
"""

from __future__ import annotations

from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from booknlp_api.api.bodies import body_response
from booknlp_api.api.errors import ApiError, from_job_error
from booknlp_api.api.job_schemas import JobPublic
from booknlp_api.api.schemas import AnalyzeRequest
from booknlp_api.config import Settings
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService


def analysis_submission(request: AnalyzeRequest, settings: Settings) -> Submission:
    """Refuse a text too long to wait for; the job service checks the rest before it queues the job."""
    if len(request.text) > settings.max_analyze_chars:
        raise ApiError(413, "text_too_large",
                       f"the text has {len(request.text)} characters; /v1/analyze accepts at most "
                       f"{settings.max_analyze_chars}. Submit longer texts to the job API: POST /v1/jobs",
                       {"chars": len(request.text), "max_analyze_chars": settings.max_analyze_chars})
    return Submission(text=request.text, book_id=request.book_id, model=request.model,
                      pipeline=None if request.pipeline is None else tuple(request.pipeline),
                      sections=request.kept_sections(), cache=request.cache, precision=request.precision)


async def analysis_response(jobs: JobService, job: Job) -> Response:
    """The result when the job succeeded, its error when it failed, else 202 with the job to poll."""
    if job.status == "failed" and job.error is not None:
        raise from_job_error(job.error)
    if not job.finished:
        public = JobPublic.of(job, await run_in_threadpool(jobs.position, job))
        return JSONResponse(public.model_dump(mode="json", by_alias=True), status_code=202,
                            headers={"Location": public.links.self_})
    # Built off the event loop: a novel's result takes a noticeable time to read and encode.
    return body_response(await run_in_threadpool(jobs.results.json, job), "application/json")
