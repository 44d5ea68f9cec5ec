"""``POST /v1/analyze``: one text in, the typed BookNLP result out, while the client waits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from fastapi.concurrency import run_in_threadpool

from booknlp_api.api.analysis import analysis_response, analysis_submission
from booknlp_api.api.auth import UNAUTHORIZED, CallerDep, authenticate
from booknlp_api.api.deps import RuntimeDep, require_json
from booknlp_api.api.job_schemas import JOB_LINKS, JobPublic
from booknlp_api.api.ratelimit import submit_within_limits
from booknlp_api.api.schemas import AnalyzeRequest, ErrorResponse
from booknlp_api.engine.result_schema import AnalysisResult

router = APIRouter(tags=["analysis"], dependencies=[Depends(authenticate)],
                   responses=UNAUTHORIZED)

_CHAPTER = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
            "in want of a wife. “My dear Mr. Bennet,” said his lady to him one day, “have you heard that "
            "Netherfield Park is let at last?”")
_EXAMPLES: dict[str, Any] = {
    "everything": {"summary": "Full pipeline, every section", "value": {"text": _CHAPTER, "book_id": "pride"}},
    "lean": {"summary": "Entities and quotes, without the bulky tokens",
             "value": {"text": _CHAPTER, "pipeline": ["entity", "quote"], "exclude": ["tokens"]}},
}


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


_ERRORS: dict[int | str, dict[str, Any]] = {
    202: {"model": JobPublic, "description": "Not finished within `analyze_wait_seconds`: the job, still running; "
                                             "poll it (`Location`) and fetch its result from the job API.",
          "links": JOB_LINKS},
    400: _error("The body is not parseable JSON (bad UTF-8, nesting too deep)."),
    413: _error("The text is longer than `max_analyze_chars` (use `POST /v1/jobs`), or the body too large."),
    415: _error("The body is not declared as `application/json`."),
    422: _error("Invalid request: empty text, unknown pipe or model, a pipe missing its needs, a stage failing."),
    409: _error("The analysis was cancelled (`DELETE /v1/jobs/{id}`) before it finished."),
    429: _error("Over one of the key's limits (requests per minute, characters per day, jobs at once): "
                "see `Retry-After`."),
    503: _error("The job queue is full (see `Retry-After`), or the GPU ran out of memory."),
}


@router.post("/v1/analyze", response_model=AnalysisResult, responses=_ERRORS, summary="Analyse a text now",
             dependencies=[Depends(require_json)])
async def analyze(request: Annotated[AnalyzeRequest, Body(openapi_examples=_EXAMPLES)],
                  runtime: RuntimeDep, caller: CallerDep) -> Response:
    """Run BookNLP on `text` and return its result as typed JSON: token count, model, pipeline, device,
    seconds per stage and the requested sections (null when not produced or not asked for).

    The analysis runs as a job, on the same queue and worker as `POST /v1/jobs`. Not finished within
    `analyze_wait_seconds`, it answers 202 with the job, so no work is lost. Texts longer than
    `max_analyze_chars` belong to the job API.
    """
    submission = analysis_submission(request, runtime.settings)
    job, _ = await run_in_threadpool(submit_within_limits, runtime.jobs, runtime.rate_limits, caller, submission)
    job = await runtime.jobs.wait(job.id, runtime.settings.analyze_wait_seconds)
    return await analysis_response(runtime.jobs, job)
