"""One analysis while the client waits: checked on the event loop, then run as a job by the worker.

A job that has not finished within ``analyze_wait_seconds`` is answered with 202 and the job itself,
so the work goes on and its result can be fetched later from the job API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from booknlp_api.api.errors import ApiError, from_job_error
from booknlp_api.api.job_schemas import JobPublic
from booknlp_api.api.schemas import AnalyzeRequest
from booknlp_api.config import Settings
from booknlp_api.engine.errors import InvalidText, ModelNotAvailable
from booknlp_api.engine.pipeline import parse_pipeline
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService


@dataclass(frozen=True)
class AnalysisPlan:
    text: str
    book_id: str
    model: str
    pipeline: tuple[str, ...]
    sections: tuple[str, ...] | None
    cache: bool

    def submission(self) -> Submission:
        return Submission(text=self.text, book_id=self.book_id, model=self.model, pipeline=self.pipeline,
                          sections=self.sections, cache=self.cache)


def plan_analysis(request: AnalyzeRequest, settings: Settings, service: NLPService) -> AnalysisPlan:
    """Refuse what cannot run before it takes a place in the queue."""
    if len(request.text) > settings.max_analyze_chars:
        raise ApiError(413, "text_too_large",
                       f"the text has {len(request.text)} characters; /v1/analyze accepts at most "
                       f"{settings.max_analyze_chars}. Submit longer texts to the job API: POST /v1/jobs",
                       {"chars": len(request.text), "max_analyze_chars": settings.max_analyze_chars})
    if not request.text.strip():
        raise InvalidText("the text is empty or only whitespace; there is nothing to analyse")
    pipeline = parse_pipeline(request.pipeline)
    model = request.model or settings.model
    available = sorted(service.available_models())
    if model not in available:
        raise ModelNotAvailable(f"model {model!r} is not available; available: {', '.join(available) or 'none'}",
                                available)
    return AnalysisPlan(request.text, request.book_id, model, tuple(pipeline.names()), request.kept_sections(),
                        request.cache)


async def analysis_response(jobs: JobService, job: Job, plan: AnalysisPlan) -> Response:
    """The result when the job succeeded, its error when it failed, else 202 with the job to poll."""
    if job.status == "failed" and job.error is not None:
        raise from_job_error(job.error)
    if not job.finished:
        public = JobPublic.of(job, jobs.position(job))
        return JSONResponse(public.model_dump(mode="json", by_alias=True), status_code=202,
                            headers={"Location": public.links.self_})
    # Built off the event loop: a novel's result takes a noticeable time to read and encode.
    body = await run_in_threadpool(jobs.results.json, job, plan.sections)
    if isinstance(body, Path):
        return FileResponse(body, media_type="application/json")
    return Response(body, media_type="application/json")
