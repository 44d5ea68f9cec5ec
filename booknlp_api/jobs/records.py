"""What the job layer talks about: a submission, a job record, its progress and its error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from booknlp_api.engine.errors import (
    EngineError,
    StageFailed,
)
from booknlp_api.engine.service import RunSummary
from booknlp_api.vocabulary import FINISHED as FINISHED  # re-exported: defined in the light vocabulary module
from booknlp_api.vocabulary import JOB_STATUSES as JOB_STATUSES
from booknlp_api.vocabulary import JobStatus, Precision


@dataclass(frozen=True)
class Submission:
    """One text and the options to analyse it with, already decoded and checked by the caller."""

    text: str
    book_id: str = "book"
    model: str | None = None
    pipeline: tuple[str, ...] | None = None
    sections: tuple[str, ...] | None = None
    """Sections the result carries; None: every section the pipeline produces."""
    precision: Precision | None = None
    """exact or fast; None: the configured default."""
    cache: bool = True
    idempotency_key: str | None = None
    text_offset: int = 0
    """Characters cut from the front of the submitted text (Gutenberg header) before ``text``."""
    owner: str | None = None
    """The API key's name that submits it; None when the service runs without keys."""


@dataclass(frozen=True)
class JobError:
    code: str
    """Stable reason: stage_failed, device_out_of_memory, invalid_text, model_not_available, worker_lost, ..."""
    message: str
    stage: str | None = None


def job_error(exc: EngineError) -> JobError:
    """How an engine error is recorded on its job (the codes of the API's error responses)."""
    return JobError(exc.code, str(exc), exc.stage if isinstance(exc, StageFailed) else None)


AnalysisInfo = RunSummary
"""How the run went, kept with the job so results can be rebuilt from the native files."""


@dataclass(frozen=True)
class Job:
    id: str
    seq: int
    status: JobStatus
    book_id: str
    model: str
    pipeline: tuple[str, ...]
    sections: tuple[str, ...] | None
    text_chars: int
    text_offset: int
    cache_key: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    expired: bool = False
    cached_from: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    progress: dict[str, Any] | None = None
    error: JobError | None = None
    analysis: AnalysisInfo | None = None
    result_dir: str | None = None
    worker_id: str | None = None
    heartbeat_at: float | None = None
    attempts: int = 0
    cancel_requested: bool = False
    precision: Precision = "exact"
    owner: str | None = None
    priority: int = 0
    """Higher runs first: jobs put back after their worker died or stopped were first in line."""
    max_active: int | None = None
    """A waiting job's owner may have this many jobs queued or running at once; it is queued within that."""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
