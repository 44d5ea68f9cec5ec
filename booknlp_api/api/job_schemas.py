"""Request and response bodies of the job API (``/v1/jobs``)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from booknlp_api.api.schemas import NON_BLANK, AnalysisOptions
from booknlp_api.vocabulary import JobStatus, Precision

if TYPE_CHECKING:  # the client imports these schemas: keep the job store (and torch) out of its imports
    from booknlp_api.jobs.records import Job

JOB_LINKS = {  # OpenAPI links: what a client (or a stateful fuzzer) can do next with the id it was given
    name: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
    for name, operation in (("GetJob", "get_job"), ("GetResult", "get_result"), ("CancelJob", "cancel_job"))}


class JobOptions(AnalysisOptions):
    """How to analyse the text; the form fields of a multipart submission."""

    strip_gutenberg: bool = Field(
        False, description="Remove Project Gutenberg's header, producer credit and licence before analysing; "
                           "`text_offset` then says how many characters went from the front.")


class JobCreate(JobOptions):
    """A whole book to analyse in the background, sent as JSON."""

    text: str = Field(min_length=1, pattern=NON_BLANK, description="The text to analyse, at most `max_job_chars` "
                                                                    "characters, not only whitespace.")


class JobLinks(BaseModel):
    self_: str = Field(validation_alias=AliasChoices("self", "self_"), serialization_alias="self",
                       examples=["/v1/jobs/4f1c2d0e9a8b4c7d9e0f1a2b3c4d5e6f"])
    result: str = Field(examples=["/v1/jobs/4f1c2d0e9a8b4c7d9e0f1a2b3c4d5e6f/result"])


class StagePublic(BaseModel):
    name: str = Field(examples=["tagger"])
    status: Literal["pending", "running", "done"]
    fraction: float = Field(description="How far this stage is, 0 to 1.")
    seconds: float | None = Field(description="Seconds spent in this stage so far; null before it starts.")


class ProgressPublic(BaseModel):
    fraction: float = Field(description="Overall, 0 to 1, weighted by what each stage of the pipeline costs.")
    stage: str | None = Field(description="The stage running now (the last one once finished).")
    elapsed_seconds: float
    eta_seconds: float | None = Field(description="Estimated seconds left; null until about 5% is done.")
    stages: list[StagePublic] = Field(description="Every stage this pipeline runs, in order.")


class JobErrorPublic(BaseModel):
    code: str = Field(examples=["stage_failed"], description="Stable reason, as in the API's error responses.")
    message: str
    stage: str | None = Field(None, description="The engine stage that failed, when one did.")


_RUNNING = {
    "id": "4f1c2d0e9a8b4c7d9e0f1a2b3c4d5e6f", "status": "running", "book_id": "emma", "model": "small",
    "pipeline": ["entity", "quote", "supersense", "event", "coref"], "precision": "exact", "sections": None,
    "queue_position": None,
    "progress": {"fraction": 0.42, "stage": "tagger", "elapsed_seconds": 95.3, "eta_seconds": 131.6, "stages": [
        {"name": "parse", "status": "done", "fraction": 1.0, "seconds": 31.0},
        {"name": "tagger", "status": "running", "fraction": 0.62, "seconds": 64.3}]},
    "error": None, "cancel_requested": False, "cached": False, "cached_from": None, "attempts": 1,
    "text_chars": 887_071, "text_offset": 0, "created_at": "2026-11-28T14:00:00Z",
    "started_at": "2026-11-28T14:00:01Z", "finished_at": None, "expires_at": None, "result_expired": False,
    "links": {"self": "/v1/jobs/4f1c2d0e9a8b4c7d9e0f1a2b3c4d5e6f",
              "result": "/v1/jobs/4f1c2d0e9a8b4c7d9e0f1a2b3c4d5e6f/result"},
}


class JobPublic(BaseModel):
    """A job: where it is in the queue, how far it has got, and where its result will be."""

    model_config = ConfigDict(json_schema_extra={"examples": [_RUNNING]})

    id: str
    status: JobStatus
    book_id: str
    model: str
    pipeline: list[str]
    precision: Precision = Field(description="exact (byte-identical to BookNLP) or fast.")
    sections: list[str] | None = Field(description="Sections the JSON result carries; null: all produced.")
    queue_position: int | None = Field(description="1 for the next job to run; null unless queued.")
    progress: ProgressPublic | None = Field(description="Null until the job starts (and for cached results).")
    error: JobErrorPublic | None = Field(description="Why the job failed; null otherwise.")
    cancel_requested: bool
    cached: bool = Field(description="True when the result was copied from an identical earlier job.")
    cached_from: str | None = Field(description="That earlier job's id.")
    attempts: int = Field(description="Runs started; more than 1 after a worker died or the service restarted.")
    text_chars: int = Field(description="Characters analysed.")
    text_offset: int = Field(description="Characters removed from the front by `strip_gutenberg`.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="When the result is deleted; set once the job finishes.")
    result_expired: bool
    links: JobLinks

    @classmethod
    def of(cls, job: Job, queue_position: int | None) -> JobPublic:
        path = f"/v1/jobs/{job.id}"
        return cls(
            id=job.id, status=job.status, book_id=job.book_id, model=job.model, pipeline=list(job.pipeline),
            precision=job.precision, sections=None if job.sections is None else list(job.sections),
            queue_position=queue_position,
            progress=None if job.progress is None else ProgressPublic.model_validate(job.progress),
            error=None if job.error is None else JobErrorPublic(**vars(job.error)),
            cancel_requested=job.cancel_requested, cached=job.cached_from is not None, cached_from=job.cached_from,
            attempts=job.attempts, text_chars=job.text_chars, text_offset=job.text_offset,
            created_at=_time(job.created_at), started_at=_time(job.started_at),
            finished_at=_time(job.finished_at), expires_at=_time(job.expires_at),
            result_expired=job.expired or (job.expires_at is not None and job.expires_at <= time.time()),
            links=JobLinks(self_=path, result=f"{path}/result"),
        )


class JobsPublic(BaseModel):
    jobs: list[JobPublic] = Field(description="Newest first.")
    total: int = Field(description="Jobs matching the filter, on all pages.")
    limit: int
    offset: int


def form_field(field: dict[str, Any]) -> dict[str, Any]:
    """A form field cannot be null, and a list with no items is no field at all: both mean the default, so
    the form's field is the non-null alternative of ``field``, with no minimum number of items."""
    choices = [choice for choice in field.get("anyOf", []) if choice.get("type") != "null"]
    if len(choices) != 1:
        return field
    extra = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    return {key: value for key, value in {**choices[0], **extra}.items() if key != "minItems"}


def text_part(description: str) -> dict[str, Any]:
    """A form part carrying a book's text, described exactly as a plain field (a schema cannot say "bytes that
    decode"); a file part carrying the same text, or an EPUB or HTML book, is described in words."""
    return {**JobCreate.model_json_schema()["properties"]["text"], "contentMediaType": "text/plain",
            "description": description}


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)
