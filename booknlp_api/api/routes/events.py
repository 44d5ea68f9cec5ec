"""``GET /v1/jobs/{id}/events``: a job's progress and status as Server-Sent Events, until it ends.

The worker writes progress into the job store from its own process (or machine); this stream reads the
store, so it works wherever the job runs. It sends an event only when something a person would see has
changed, wakes at once when any job ends, and closes after the ``end`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from booknlp_api.api.auth import UNAUTHORIZED, CallerDep, authenticate
from booknlp_api.api.deps import RuntimeDep
from booknlp_api.api.job_schemas import JobPublic
from booknlp_api.api.runtime import Runtime
from booknlp_api.api.schemas import ErrorResponse

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(authenticate)], responses=UNAUTHORIZED)

PROGRESS_SECONDS = 0.5
"""How often the store is read for progress while a job runs (a finished job wakes the stream at once)."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often while nothing changes, so proxies do not close a quiet stream."""

_EVENTS = {
    200: {"description": "`text/event-stream`. Events: `status` (the job, whenever its status or queue place "
                         "changes; the first event is always one), `progress` (the job, when its progress moves), "
                         "`end` (the finished job; the stream closes after it). `data` is the job as `GET "
                         "/v1/jobs/{id}` returns it.",
          "content": {"text/event-stream": {"schema": {  # one event, by its fields (as SSE clients read them)
              "type": "object", "required": ["event", "data"], "properties": {
                  "event": {"enum": ["status", "progress", "end"]}, "id": {"type": "string"},
                  "data": {"type": "string", "contentMediaType": "application/json",
                           "contentSchema": {"$ref": "#/components/schemas/JobPublic"}}}}}}},
    404: {"model": ErrorResponse, "description": "No such job, or another key's job."},
}


@router.get("/{job_id}/events", response_class=StreamingResponse, responses=_EVENTS,
            summary="A job's progress, live (Server-Sent Events)")
async def job_events(job_id: str, request: Request, runtime: RuntimeDep, caller: CallerDep) -> StreamingResponse:
    """Follow a job without polling: its status and progress as Server-Sent Events, closed when it ends."""
    first = await run_in_threadpool(_read, runtime, job_id, caller.scope)  # a 404 comes before the stream starts
    return StreamingResponse(_stream(first, request, runtime, caller.scope), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(first: JobPublic, request: Request, runtime: Runtime, scope: str | None) -> AsyncIterator[str]:
    number = 0
    shown: tuple[Any, ...] | None = None
    job = first
    quiet_since = time.monotonic()
    with runtime.jobs.finishes.waiter() as finished:
        while True:
            status, progress = _status_of(job), _progress_of(job)
            if shown is None or status != shown[0] or progress != shown[1]:
                number += 1
                kind = "end" if job.status in ("succeeded", "failed", "cancelled") else (
                    "status" if shown is None or status != shown[0] else "progress")
                yield _event(number, kind, job)
                if kind == "end":
                    return
                shown, quiet_since = (status, progress), time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), PROGRESS_SECONDS)
            finished.clear()
            if await request.is_disconnected():
                return
            job = await run_in_threadpool(_read, runtime, first.id, scope)


def _read(runtime: Runtime, job_id: str, scope: str | None) -> JobPublic:
    job = runtime.jobs.get(job_id, scope)
    return JobPublic.of(job, runtime.jobs.position(job))


def _status_of(job: JobPublic) -> tuple[Any, ...]:
    return job.status, job.queue_position, job.cancel_requested


def _progress_of(job: JobPublic) -> tuple[Any, ...] | None:
    if job.progress is None:
        return None
    return job.progress.stage, round(job.progress.fraction, 3)


def _event(number: int, kind: str, job: JobPublic) -> str:
    return f"id: {number}\nevent: {kind}\ndata: {job.model_dump_json(by_alias=True)}\n\n"
