"""Multi-step client operations as generators, driven identically by the blocking and the async client.

A flow yields a :class:`Call` when it needs one HTTP exchange (the driver sends it and sends back the raw
``httpx.Response``, or throws the transport error into the flow) and a float when it needs to sleep. So the
retry policy, waiting for a job and fetching a result after a late analysis are written once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import httpx

from booknlp_api.api.batch_schemas import BatchPublic
from booknlp_api.api.job_schemas import JobPublic
from booknlp_api.client import calls
from booknlp_api.client.calls import Call
from booknlp_api.client.errors import BookNLPError, JobFailed
from booknlp_api.client.progress import BatchBar, JobBar
from booknlp_api.engine.result_schema import AnalysisResult
from booknlp_api.vocabulary import FINISHED

T = TypeVar("T")
Flow = Generator["Call[Any] | float", Any, T]

# A lost connection is retried only where sending twice cannot do a thing twice.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def send(call: Call[T], max_retries: int, backoff: float) -> Flow[T]:
    """One call, sent again after 429/503 (honouring ``Retry-After``) or a lost connection when that is safe."""
    attempt = 0
    while True:
        try:
            response: httpx.Response = yield call
        except httpx.TransportError as exc:
            if attempt >= max_retries or not _safe(call):
                raise BookNLPError(f"cannot reach the service: {exc}", code="connection_error") from exc
            yield backoff * 2 ** attempt
        else:
            delay = calls.retry_delay(response, attempt, max_retries, backoff)
            if delay is None:
                return call.read(response)
            yield delay
        attempt += 1


def _safe(call: Call[Any]) -> bool:
    return call.method in _SAFE_METHODS or "Idempotency-Key" in call.headers


def wait(job_id: str, *, poll: float, timeout: float | None, progress: bool, max_retries: int,
         backoff: float) -> Flow[JobPublic]:
    """Poll a job until it ends; a failed or cancelled end raises :class:`JobFailed`."""
    job: JobPublic = yield from _poll(calls.job(job_id), lambda j: j.status in FINISHED,
                                      JobBar(job_id, enabled=progress), poll=poll, timeout=timeout,
                                      max_retries=max_retries, backoff=backoff)
    if job.status != "succeeded":
        raise JobFailed(job)
    return job


def wait_batch(batch_id: str, *, poll: float, timeout: float | None, progress: bool, max_retries: int,
               backoff: float) -> Flow[BatchPublic]:
    """Poll a batch until every job has ended (failed or cancelled books do not raise: see ``counts``)."""
    batch: BatchPublic = yield from _poll(calls.batch(batch_id), lambda b: b.finished,
                                          BatchBar(batch_id, enabled=progress), poll=poll, timeout=timeout,
                                          max_retries=max_retries, backoff=backoff)
    return batch


def _poll(call: Call[T], ended: Callable[[T], bool], bar: JobBar, *, poll: float, timeout: float | None,
          max_retries: int, backoff: float) -> Flow[T]:
    """Read ``call``'s answer until ``ended`` says so, drawing it on ``bar``; ``wait_timeout`` past ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = min(0.2, poll)
    try:
        while True:
            answer = yield from send(call, max_retries, backoff)
            bar.update(answer)  # type: ignore[arg-type]
            if ended(answer):
                return answer
            if deadline is not None and time.monotonic() >= deadline:
                raise BookNLPError(f"{call.path} has not ended after {timeout} s", code="wait_timeout",
                                   details={"path": call.path, "status": getattr(answer, "status", None)})
            left = poll if deadline is None else max(0.0, deadline - time.monotonic())
            yield min(interval, left)
            interval = min(poll, interval * 2)  # quick for short jobs, gentle for whole books
    finally:
        bar.close()


def analyze(text: str, options: dict[str, Any], *, poll: float, timeout: float | None, max_retries: int,
            backoff: float) -> Flow[AnalysisResult]:
    """An analysis now; if the service answers 202 (still running), wait for the job and fetch its result."""
    answer = yield from send(calls.analyze(text, options), max_retries, backoff)
    if isinstance(answer, AnalysisResult):
        return answer
    yield from wait(answer.id, poll=poll, timeout=timeout, progress=False, max_retries=max_retries,
                    backoff=backoff)
    sections = options.get("sections")
    exclude = options.get("exclude")
    result = yield from send(calls.result(answer.id, "json", sections, exclude), max_retries, backoff)
    assert isinstance(result, AnalysisResult)
    return result
