"""Every failure leaves the service as one JSON shape: ``{"error": {"code", "message", "details"}}``.

Engine and job errors are translated here by type; unexpected exceptions become a generic 500 whose
body never carries the exception's text (the server logs the traceback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from booknlp_api.api.contract import allowed_methods
from booknlp_api.api.schemas import ErrorDetail, ErrorResponse
from booknlp_api.engine.book_archive import ArchiveRefused, ArchiveTooLarge
from booknlp_api.engine.errors import (
    Cancelled,
    DeviceOutOfMemory,
    EngineError,
    ModelNotAvailable,
    StageFailed,
)
from booknlp_api.engine.memory import TooLargeForMemory
from booknlp_api.engine.text import TextTooLarge, UndecodableText
from booknlp_api.jobs.errors import (
    BatchNotFinished,
    BatchNotFound,
    DatabaseUnavailable,
    FormatNotProduced,
    IdempotencyConflict,
    JobAlreadyFinished,
    JobNotFinished,
    JobNotFound,
    JobsError,
    QueueFull,
    ResultExpired,
    TooManyActiveJobs,
)
from booknlp_api.jobs.records import JobError

RETRY_AFTER_SECONDS = 5

_HTTP_CODES = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}

_BAD_BODY = "the request body is not valid JSON: it must be UTF-8 and nest at most a few hundred levels"


class ApiError(Exception):
    """An error the API raises on purpose, rendered as it is."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


class BodyTooLarge(HTTPException):
    """A body read past the cap; an HTTPException so that FastAPI's body parsing re-raises it unchanged."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413)
        self.max_bytes = max_bytes


class BodyTimeout(HTTPException):
    """A body that did not arrive in time (``api.hygiene``); an HTTPException for the same reason as above."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408)
        self.seconds = seconds


def body_too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body is larger than {max_bytes} bytes; send long texts "
                                           "to the job API (POST /v1/jobs)", {"max_body_bytes": max_bytes})


def error_response(error: ApiError) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=error.code, message=error.message, details=error.details))
    return JSONResponse(body.model_dump(mode="json"), status_code=error.status, headers=error.headers)


def from_engine(exc: EngineError) -> ApiError:
    """The HTTP form of an engine error: bad input is 422, a full GPU 503, a failing stage 422 naming it."""
    if isinstance(exc, DeviceOutOfMemory):
        return ApiError(503, exc.code, f"{exc}; retry later or with a shorter text",
                        {"stage": exc.stage}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, StageFailed):
        return ApiError(422, exc.code, str(exc), {"stage": exc.stage})
    if isinstance(exc, ModelNotAvailable):
        return ApiError(422, exc.code, str(exc), {"available": exc.available})
    if isinstance(exc, Cancelled):
        return ApiError(503, exc.code, "the analysis was cancelled because the service is stopping")
    if isinstance(exc, TextTooLarge):
        return ApiError(413, exc.code, str(exc), {"limit": exc.limit, "unit": exc.unit})
    if isinstance(exc, TooLargeForMemory):
        return ApiError(413, exc.code, str(exc), {"tokens": exc.tokens, "estimate_bytes": exc.estimate,
                                                  "limit_bytes": exc.limit, "setting": "BOOKNLP_WORKER_MEMORY_BYTES"})
    if isinstance(exc, ArchiveRefused):
        return ApiError(413 if isinstance(exc, ArchiveTooLarge) else 422, exc.code, str(exc), {"member": exc.member})
    if isinstance(exc, UndecodableText):
        return ApiError(422, exc.code, str(exc), {"offset": exc.offset, "encoding": exc.encoding})
    return ApiError(422, exc.code, str(exc))


def from_job_error(error: JobError) -> ApiError:
    """The HTTP form of a failed job's error, as ``from_engine`` renders the exception it recorded."""
    if error.code == "device_out_of_memory":
        return ApiError(503, error.code, f"{error.message}; retry later or with a shorter text",
                        {"stage": error.stage}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if error.code in ("internal_error", "worker_lost"):
        return ApiError(500, error.code, error.message)
    return ApiError(422, error.code, error.message, {"stage": error.stage} if error.stage else None)


def from_jobs(exc: JobsError) -> ApiError:
    if isinstance(exc, QueueFull):
        return ApiError(503, "queue_full", str(exc), {"queued": exc.queued}, {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, DatabaseUnavailable):
        return ApiError(503, "database_unavailable", str(exc), headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, TooManyActiveJobs):
        return ApiError(429, "too_many_active_jobs", str(exc), {"active": exc.active, "limit": exc.limit},
                        {"Retry-After": str(exc.retry_after), "RateLimit-Policy": f'"active-jobs";q={exc.limit}'})
    if isinstance(exc, BatchNotFinished):
        return ApiError(409, "batch_not_finished", str(exc), {"unfinished": exc.unfinished})
    if isinstance(exc, JobNotFinished | JobAlreadyFinished):
        code = "job_not_finished" if isinstance(exc, JobNotFinished) else "job_finished"
        return ApiError(409, code, str(exc), {"status": exc.job.status})
    status, code = {JobNotFound: (404, "job_not_found"), IdempotencyConflict: (422, "idempotency_key_reused"),
                    ResultExpired: (410, "result_expired"), FormatNotProduced: (404, "format_not_produced"),
                    BatchNotFound: (404, "batch_not_found")}.get(type(exc), (500, "internal_error"))
    return ApiError(status, code, str(exc))


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: the offending input may be a whole novel.
    return [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
            for err in exc.errors()]


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _engine_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EngineError)
    return error_response(from_engine(exc))


async def _jobs_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobsError)
    return error_response(from_jobs(exc))


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    if details and details[0]["type"] == "json_invalid":
        return error_response(ApiError(400, "invalid_json", f"the request body is not valid JSON "
                                                            f"(near character {details[0]['loc'][-1]})"))
    summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details[:3])
    return error_response(ApiError(422, "validation_error", f"the request is invalid: {summary}", details))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, BodyTooLarge):
        return error_response(body_too_large(exc.max_bytes))
    if isinstance(exc, BodyTimeout):
        return error_response(ApiError(408, "body_timeout", f"the request body did not arrive within {exc.seconds:g} "
                                                            "seconds", {"body_timeout_seconds": exc.seconds},
                                       {"Connection": "close"}))
    # FastAPI's 400 says only "There was an error parsing the body": say what a valid body is.
    is_form = request.headers.get("content-type", "").startswith("multipart/")
    message = _BAD_BODY if exc.status_code == 400 and not is_form else str(exc.detail)
    code = "invalid_form" if exc.status_code == 400 and is_form else _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette's Allow names only the first route on the path; static files say nothing.
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope)) or headers.get("Allow", "GET, HEAD")
        message = f"{request.method} is not allowed here; this path accepts {headers['Allow']}"
    return error_response(ApiError(exc.status_code, code, message, headers=headers))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this response, so the server logs the traceback.
    return error_response(ApiError(500, "internal_error", "an unexpected error occurred; it has been logged"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(EngineError, _engine_error)
    app.add_exception_handler(JobsError, _jobs_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
