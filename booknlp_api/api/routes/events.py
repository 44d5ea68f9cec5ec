"""``GET /v1/jobs/{id}/events``: a job's progress and status as Server-Sent Events, until it ends.

Read from the job store (``api.event_stream``), so it works wherever the job runs. It sends an event only
when something a person would see has changed, wakes at once when any job ends, and closes after ``end``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from booknlp_api.api.auth import UNAUTHORIZED, CallerDep, authenticate
from booknlp_api.api.deps import RuntimeDep
from booknlp_api.api.event_stream import HEADERS, events_response, follow
from booknlp_api.api.job_schemas import JobPublic
from booknlp_api.api.runtime import Runtime
from booknlp_api.api.schemas import ErrorResponse

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(authenticate)], responses=UNAUTHORIZED)

_EVENTS = {
    200: events_response("`text/event-stream`. Events: `status` (the job, whenever its status or queue place "
                         "changes; the first event is always one), `progress` (the job, when its progress moves), "
                         "`end` (the finished job; the stream closes after it). `data` is the job as `GET "
                         "/v1/jobs/{id}` returns it.", ["status", "progress", "end"],
                         {"$ref": "#/components/schemas/JobPublic"}),
    404: {"model": ErrorResponse, "description": "No such job, or another key's job."},
}


@router.get("/{job_id}/events", response_class=StreamingResponse, responses=_EVENTS,
            summary="A job's progress, live (Server-Sent Events)")
async def job_events(job_id: str, request: Request, runtime: RuntimeDep, caller: CallerDep) -> StreamingResponse:
    """Follow a job without polling: its status and progress as Server-Sent Events, closed when it ends."""
    first = await run_in_threadpool(_read, runtime, job_id, caller.scope)  # a 404 comes before the stream starts
    stream = follow(request, runtime.jobs.finishes, first, lambda: _read(runtime, job_id, caller.scope), _changes)
    return StreamingResponse(stream, media_type="text/event-stream", headers=HEADERS)


def _changes(shown: JobPublic | None, job: JobPublic) -> list[tuple[str, str]]:
    status, progress = _status_of(job), _progress_of(job)
    if shown is not None and status == _status_of(shown) and progress == _progress_of(shown):
        return []
    kind = "end" if job.status in ("succeeded", "failed", "cancelled") else (
        "status" if shown is None or status != _status_of(shown) else "progress")
    return [(kind, job.model_dump_json(by_alias=True))]


def _read(runtime: Runtime, job_id: str, scope: str | None) -> JobPublic:
    job = runtime.jobs.get(job_id, scope)
    return JobPublic.of(job, runtime.jobs.position(job))


def _status_of(job: JobPublic) -> tuple[Any, ...]:
    return job.status, job.queue_position, job.cancel_requested


def _progress_of(job: JobPublic) -> tuple[Any, ...] | None:
    if job.progress is None:
        return None
    return job.progress.stage, round(job.progress.fraction, 3)
