"""Request and response bodies of the HTTP API, other than the analysis result (``engine.result_schema``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from booknlp_api.vocabulary import BOOK_ID, PIPES, REQUIRES, SECTIONS, Pipe, Precision, Section

SYNTHETIC_NOTE = "True for random-weight models (testing only): their output is linguistically meaningless."

BLANK = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())
"""What ``str.strip()`` removes (the engine's test for an empty text); all of it lies below U+3001."""
NON_BLANK = "[^" + "".join(f"\\u{ord(char):04x}" for char in BLANK) + "]"
"""A character that is not blank. Spelled out, not ``\\S``: JSON Schema's ``\\s`` (ECMA-262) and Python's
whitespace differ (U+001C-U+001F, U+0085, U+FEFF), and the schema must say exactly what the service accepts."""
_PIPELINE_RULES = {"allOf": [{"if": {"contains": {"const": pipe}}, "then": {"allOf": [
    {"contains": {"const": need}} for need in needs]}} for pipe, needs in REQUIRES.items()]}


class AnalysisOptions(BaseModel):
    """How to analyse a text, whether now (`POST /v1/analyze`) or as a job (`POST /v1/jobs`)."""

    # strict: a value of the wrong type is refused, never coerced (`"cache": 0` is not `false`).
    model_config = ConfigDict(extra="forbid", strict=True)

    book_id: str = Field("book", pattern=BOOK_ID.pattern, description="Identifier used in results and file names.")
    model: str | None = Field(None, description="Model name (see `GET /v1/info`); default: the configured one.")
    pipeline: Annotated[list[Pipe], Field(min_length=1, json_schema_extra=_PIPELINE_RULES)] | None = Field(
        None, description=f"Pipes to run, any of {', '.join(PIPES)}; `quote` needs `entity`, `coref` needs "
                          "`entity` and `quote`. Default: all.", examples=[["entity", "quote"]])
    sections: list[Section] | None = Field(
        None, description="Sections to return (default: every section the pipeline produces).")
    precision: Precision | None = Field(
        None, description="`exact`: native files byte-identical to BookNLP's own; `fast`: faster, may differ "
                          "slightly (see `GET /v1/info`). Default: the configured one.")
    exclude: list[Section] | None = Field(
        None, description="Sections to leave out, e.g. `tokens`, the bulkiest.", examples=[["tokens"]])
    cache: bool = Field(
        True, description="Answer with the result of an identical earlier analysis (same text, model files, "
                          "pipeline, book_id and software) if the service keeps a result cache.")

    def kept_sections(self) -> tuple[Section, ...] | None:
        """The sections asked for, less those excluded; None when the request chose none."""
        if self.sections is None and not self.exclude:
            return None
        wanted = self.sections if self.sections is not None else SECTIONS
        return tuple(s for s in SECTIONS if s in wanted and s not in (self.exclude or ()))


class AnalyzeRequest(AnalysisOptions):
    """One text to analyse now, while the client waits."""

    text: str = Field(min_length=1, pattern=NON_BLANK, description="The text to analyse (plain UTF-8 text, at most "
                      "`max_analyze_chars` characters, not only whitespace).")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason.", examples=["invalid_pipeline"])
    message: str = Field(description="What went wrong, for a person.")
    details: Any = Field(None, description="Structured extras: validation errors, available models, the stage.")


class ErrorResponse(BaseModel):
    """The one shape of every error this service returns."""

    error: ErrorDetail


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"


class Versions(BaseModel):
    booknlp_api: str
    booknlp: str | None
    torch: str | None
    transformers: str | None
    spacy: str | None
    spacy_model: str = Field(description="The spaCy pipeline package that parses texts.")
    spacy_model_version: str | None


class DevicePublic(BaseModel):
    device: str = Field(examples=["cpu", "cuda:0"])
    cuda_available: bool
    cuda_device_name: str | None = None
    cuda_memory_total_bytes: int | None = None
    cuda_memory_allocated_bytes: int | None = None


class ModelPublic(BaseModel):
    name: str
    synthetic: bool = Field(description=SYNTHETIC_NOTE)
    seed: int | None = Field(description="Seed of synthetic weights; null for trained models.")
    source: str = Field(description="'synthesized', or where the files were downloaded from.")


class LoadedModelPublic(ModelPublic):
    components: list[str] = Field(description="Components in memory: entity, quote, coref.")
    load_seconds: dict[str, float]


class WorkerPublic(BaseModel):
    id: str = Field(description="host:pid:random, unique per worker process.")
    host: str
    pid: int
    state: Literal["loading", "ready", "failed"]
    device: DevicePublic | None = Field(description="The device it is pinned to; null before it reported one.")
    models: list[LoadedModelPublic] = Field(description="Models in its memory.")
    error: str | None = Field(description="Why it could not load the default model (state failed).")


class ReadyPublic(BaseModel):
    status: Literal["ready"] = "ready"
    device: DevicePublic = Field(description="The device of the newest ready worker (all of them: `workers`).")
    models: list[LoadedModelPublic] = Field(description="Models in the newest ready worker's memory.")
    synthetic_models: bool = Field(description="True when any loaded model is synthetic. " + SYNTHETIC_NOTE)
    versions: Versions
    workers: list[WorkerPublic] = Field(
        description="Every worker process heard from within the lease (failed ones too), on any host, newest first.")


class AvailableModelPublic(ModelPublic):
    loaded: bool
    components: dict[str, str] = Field(description="Pipeline component -> model file.")


class Limits(BaseModel):
    max_analyze_chars: int = Field(description="Longest text `POST /v1/analyze` accepts; longer: `POST /v1/jobs`.")
    max_body_bytes: int = Field(description="Largest request body accepted, in bytes.")
    max_job_chars: int = Field(description="Longest text `POST /v1/jobs` accepts, in characters.")
    max_job_bytes: int = Field(description="Largest text `POST /v1/jobs` accepts, in bytes, sent and decompressed.")
    max_queued_jobs: int = Field(description="Jobs that may wait for the worker before submissions get 503.")
    analyze_wait_seconds: float = Field(description="How long `POST /v1/analyze` waits before answering 202.")
    job_ttl_seconds: float = Field(description="How long a finished job's result is kept.")


class PrecisionPublic(BaseModel):
    name: Precision
    description: str
    options: list[str] = Field(description="What this precision changes on this service's device; empty: nothing.")


class InfoPublic(BaseModel):
    default_model: str
    default_precision: Precision = Field(description="Precision used when a request names none.")
    precisions: list[PrecisionPublic]
    models: list[AvailableModelPublic] = Field(description="Models found in the models folder.")
    pipes: list[str]
    sections: list[str]
    limits: Limits
    versions: Versions
