"""One exception tree for every failure the service reports, mapped from its error shape.

The server answers every error as ``{"error": {"code", "message", "details"}}``; the client raises the class
for its status (so callers can catch by kind) carrying the code, message and details unchanged.
"""

from __future__ import annotations

from typing import Any

import httpx


class BookNLPError(Exception):
    """Anything the client could not do; ``status`` is None when no HTTP answer came back."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "client_error",
                 details: Any = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class InvalidRequest(BookNLPError):
    """400, 405, 413, 415, 422: the request itself is wrong; sending it again will not help."""


class AuthenticationFailed(BookNLPError):
    """401: no key, or a wrong or revoked one."""


class NotFound(BookNLPError):
    """404: no such job, or not one of this key's jobs (the service never says which)."""


class Conflict(BookNLPError):
    """409: the job is not in a state that allows this (not finished yet, already ended, cancelled...)."""


class Gone(BookNLPError):
    """410: the job's result has expired and was deleted."""


class RateLimited(BookNLPError):
    """429: over one of the key's limits; ``retry_after`` says when to try again."""


class Unavailable(BookNLPError):
    """503: the queue is full, the GPU ran out of memory, or the service is not ready; try again later."""


class ServerError(BookNLPError):
    """Any other 5xx: a fault on the server's side."""


class JobFailed(BookNLPError):
    """A job this client waited for ended ``failed`` (its error's code and message) or ``cancelled``."""

    def __init__(self, job: Any) -> None:
        error = getattr(job, "error", None)
        code = error.code if error is not None else job.status
        message = error.message if error is not None else f"job {job.id} ended {job.status}"
        super().__init__(message, code=code, details={"job_id": job.id, "status": job.status})
        self.job = job


_BY_STATUS: dict[int, type[BookNLPError]] = {
    400: InvalidRequest, 405: InvalidRequest, 408: InvalidRequest, 413: InvalidRequest, 415: InvalidRequest,
    422: InvalidRequest, 401: AuthenticationFailed, 404: NotFound, 409: Conflict, 410: Gone, 429: RateLimited,
    503: Unavailable,
}


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the service sends a number of seconds; an HTTP date is not used)."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_for(response: httpx.Response) -> BookNLPError:
    """The exception for an error response, from its JSON error shape (or its status when it has none)."""
    try:
        error = response.json()["error"]
        code, message, details = str(error["code"]), str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{response.status_code}", response.reason_phrase or "error", None
    kind = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else BookNLPError)
    return kind(message, status=response.status_code, code=code, details=details,
                retry_after=retry_after(response))
