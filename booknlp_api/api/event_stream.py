"""Server-Sent Events that follow something in the job store (a job, a batch) until it ends.

The worker writes progress into the store from its own process (or machine); a stream reads the store,
so it works wherever the jobs run. It reads again every ``PROGRESS_SECONDS`` and at once when any job
ends, sends what a person would see changed (``changes``), keeps quiet connections open with comment
lines, and closes after the ``end`` event or when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from booknlp_api.jobs.wake import FinishWatch

PROGRESS_SECONDS = 0.5
"""How often the store is read for progress (a finished job wakes the stream at once)."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often while nothing changes, so proxies do not close a quiet stream."""
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

def events_response(description: str, kinds: list[str], data: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI answer of a stream: one event described by its fields (as SSE clients and the fuzzer read them),
    ``data`` being JSON of the schema ``data``."""
    return {"description": description, "content": {"text/event-stream": {"schema": {
        "type": "object", "required": ["event", "data"], "properties": {
            "event": {"enum": kinds}, "id": {"type": "string"},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data}}}}}}


Seen = TypeVar("Seen")
Changes = Callable[[Seen | None, Seen], list[tuple[str, str]]]
"""The events (kind, data) between what was last shown (None: nothing yet) and what is read now; ``end`` closes."""


async def follow(request: Request, finishes: FinishWatch, first: Seen, read: Callable[[], Seen],
                 changes: Changes[Seen]) -> AsyncIterator[str]:
    """The event stream: ``first`` as read before the response began, then ``read()`` (blocking) again and again."""
    number = 0
    shown: Seen | None = None
    current = first
    quiet_since = time.monotonic()
    with finishes.waiter() as finished:
        while True:
            events = changes(shown, current)
            for kind, data in events:
                number += 1
                yield f"id: {number}\nevent: {kind}\ndata: {data}\n\n"
                if kind == "end":
                    return
            if events:
                shown, quiet_since = current, time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), PROGRESS_SECONDS)
            finished.clear()
            if await request.is_disconnected():
                return
            current = await run_in_threadpool(read)
