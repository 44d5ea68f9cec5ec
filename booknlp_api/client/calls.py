"""What each client method sends and how it reads the answer, shared by ``Client`` and ``AsyncClient``.

A :class:`Call` is a request plus the parser for its success; the two clients differ only in how they send
it (blocking or awaited) and how they sleep between retries, so the protocol lives here once.
"""

from __future__ import annotations

import gzip
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Generic, Literal, TypeVar

import httpx
from pydantic import ValidationError

from booknlp_api.api.batch_schemas import BatchesPublic, BatchPublic
from booknlp_api.api.job_schemas import JobCreate, JobOptions, JobPublic, JobsPublic
from booknlp_api.api.schemas import AnalyzeRequest, InfoPublic, ReadyPublic
from booknlp_api.client.errors import BookNLPError, InvalidRequest, error_for, retry_after
from booknlp_api.engine.result_schema import AnalysisResult
from booknlp_api.vocabulary import ARCHIVE_SUFFIXES

T = TypeVar("T")
ResultFormat = Literal["json", "native", "html"]
Source = str | bytes | os.PathLike[str]
Destination = str | os.PathLike[str] | BinaryIO
"""Where a downloaded body goes: a file path (written whole or not at all) or an open binary file."""

RETRY_STATUSES = frozenset({429, 503})
_LIST_FIELDS = ("pipeline", "sections", "exclude")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: frozenset[int] = frozenset({200})
    into: Destination | None = None
    """A successful answer's body is streamed here, as the server sent it, instead of being held in memory."""

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return client.build_request(self.method, self.path, params=self.params, json=self.json, files=self.files,
                                    data=self.data, headers=self.headers)

    def read(self, response: httpx.Response) -> T:
        if response.status_code not in self.ok:
            raise error_for(response)
        return self.parse(response)


@contextmanager
def saving(into: Destination) -> Iterator[BinaryIO]:
    """A file to stream a body into: a path gets a ``.part`` file renamed over it once complete, so an
    interrupted download never leaves a truncated result under the real name."""
    if not isinstance(into, str | os.PathLike):
        yield into
        return
    path = Path(into)
    part = path.with_name(f"{path.name}.part")
    try:
        with part.open("wb") as out:
            yield out
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


def retry_delay(response: httpx.Response, attempt: int, max_retries: int, backoff: float) -> float | None:
    """Seconds to wait before sending again, or None to stop: only 429 and 503, honouring ``Retry-After``."""
    if response.status_code not in RETRY_STATUSES or attempt >= max_retries:
        return None
    told = retry_after(response)
    return told if told is not None else backoff * 2 ** attempt


def _options(model: type[JobOptions] | type[AnalyzeRequest], values: dict[str, Any]) -> dict[str, Any]:
    """The options validated by the server's own schema, so mistakes are caught before anything is sent."""
    try:
        return model.model_validate(values).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid options: {exc.errors(include_url=False)}", code="validation_error",
                             details=exc.errors(include_url=False)) from None


def _analysis(response: httpx.Response) -> AnalysisResult | JobPublic:
    if response.status_code == 202:
        return JobPublic.model_validate_json(response.content)
    return AnalysisResult.model_validate_json(response.content)


def analyze(text: str, options: dict[str, Any]) -> Call[AnalysisResult | JobPublic]:
    body = _options(AnalyzeRequest, {"text": text, **options})
    return Call("POST", "/v1/analyze", _analysis, json=body, ok=frozenset({200, 202}))


def submit(source: Source, options: dict[str, Any], idempotency_key: str | None = None) -> Call[JobPublic]:
    """A job from a text (JSON), or from bytes or a file (uploaded gzipped, as a multipart file part)."""
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    parse = _model(JobPublic)
    if isinstance(source, str):
        return Call("POST", "/v1/jobs", parse, json=_options(JobCreate, {"text": source, **options}),
                    headers=headers, ok=frozenset({202}))
    name, raw = _file(source)
    if not isinstance(source, bytes):
        options = {"book_id": _book_id(Path(source)), **options}
    files = {"file": (f"{name}.gz", gzip.compress(raw, mtime=0), "application/gzip")}
    return Call("POST", "/v1/jobs", parse, data=_form(options), files=files, headers=headers, ok=frozenset({202}))


def _file(source: bytes | os.PathLike[str] | tuple[str, bytes]) -> tuple[str, bytes]:
    """A file's name and bytes: read from a path, or given (bare bytes are a ``book.txt``)."""
    if isinstance(source, tuple):
        return source
    if isinstance(source, bytes):
        return "book.txt", source
    path = Path(source)
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise BookNLPError(f"cannot read {path}: {exc}", code="unreadable_file") from None


def _form(options: dict[str, Any]) -> dict[str, str]:
    """The options as multipart form fields (lists comma-separated)."""
    form = _options(JobOptions, options)
    return {key: ",".join(value) if key in _LIST_FIELDS else _form_value(value) for key, value in form.items()
            if value is not None}


def _form_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _book_id(path: Path) -> str:
    """A file's stem as a book id, reduced to the characters book ids allow."""
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name.split(".")[0])
    return stem.strip("._-")[:64] or "book"


def _model(model: type[Any]) -> Callable[[httpx.Response], Any]:
    return lambda response: model.model_validate_json(response.content)


def job(job_id: str) -> Call[JobPublic]:
    return Call("GET", f"/v1/jobs/{job_id}", _model(JobPublic))


def jobs(status: str | None, limit: int, offset: int) -> Call[JobsPublic]:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if status is not None:
        params["status"] = status
    return Call("GET", "/v1/jobs", _model(JobsPublic), params=params)


def cancel(job_id: str) -> Call[JobPublic]:
    return Call("DELETE", f"/v1/jobs/{job_id}", _model(JobPublic), ok=frozenset({200, 202}))


def result(job_id: str, result_format: ResultFormat, sections: list[str] | None,
           exclude: list[str] | None) -> Call[AnalysisResult | bytes | str]:
    parse: Callable[[httpx.Response], AnalysisResult | bytes | str] = {
        "json": _model(AnalysisResult), "native": lambda r: r.content, "html": lambda r: r.text}[result_format]
    return Call("GET", f"/v1/jobs/{job_id}/result", parse, params=_result_params(result_format, sections, exclude))


def download(job_id: str, into: Destination, result_format: ResultFormat, sections: list[str] | None,
             exclude: list[str] | None) -> Call[Destination]:
    """A result's body streamed into a file byte for byte (never parsed and serialised again)."""
    return Call("GET", f"/v1/jobs/{job_id}/result", lambda _: into,
                params=_result_params(result_format, sections, exclude), into=into)


def _result_params(result_format: str, sections: list[str] | None, exclude: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"format": result_format}
    if sections is not None:
        params["sections"] = sections
    if exclude is not None:
        params["exclude"] = exclude
    return params


def submit_batch(sources: Sequence[Source | tuple[str, bytes]], options: dict[str, Any],
                 idempotency_key: str | None = None) -> Call[BatchPublic]:
    """A batch from book files or archives (paths, ``str`` too), or ``(name, bytes)``: one part each; books are
    gzipped on the way, archives sent as they are."""
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    files = []
    for source in sources:
        name, raw = _file(Path(source) if isinstance(source, str) else source)  # a batch's strings are paths
        if name.lower().endswith(ARCHIVE_SUFFIXES):
            files.append(("file", (name, raw, "application/octet-stream")))
        else:
            files.append(("file", (f"{name}.gz", gzip.compress(raw, mtime=0), "application/gzip")))
    return Call("POST", "/v1/batches", _model(BatchPublic), data=_form(options), files=files, headers=headers,
                ok=frozenset({202}))


def batch(batch_id: str) -> Call[BatchPublic]:
    return Call("GET", f"/v1/batches/{batch_id}", _model(BatchPublic))


def batches(limit: int, offset: int) -> Call[BatchesPublic]:
    return Call("GET", "/v1/batches", _model(BatchesPublic), params={"limit": limit, "offset": offset})


def cancel_batch(batch_id: str) -> Call[BatchPublic]:
    return Call("DELETE", f"/v1/batches/{batch_id}", _model(BatchPublic))


def batch_result(batch_id: str, result_format: Literal["zip", "csv"]) -> Call[bytes | str]:
    parse: Callable[[httpx.Response], bytes | str] = (lambda r: r.content) if result_format == "zip" \
        else (lambda r: r.text)
    return Call("GET", f"/v1/batches/{batch_id}/result", parse, params={"format": result_format})


def download_batch(batch_id: str, into: Destination, result_format: Literal["zip", "csv"]) -> Call[Destination]:
    return Call("GET", f"/v1/batches/{batch_id}/result", lambda _: into, params={"format": result_format},
                into=into)


def batch_id_of(batch_or_id: BatchPublic | str) -> str:
    return batch_or_id if isinstance(batch_or_id, str) else batch_or_id.id


def info() -> Call[InfoPublic]:
    return Call("GET", "/v1/info", _model(InfoPublic))


def ready() -> Call[ReadyPublic]:
    return Call("GET", "/v1/ready", _model(ReadyPublic), ok=frozenset({200, 503}))


def job_id_of(job_or_id: JobPublic | str) -> str:
    return job_or_id if isinstance(job_or_id, str) else job_or_id.id
