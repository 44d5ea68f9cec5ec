"""A job submission read from the request: JSON, or a multipart upload of a (possibly gzipped) book file:
plain text, EPUB or HTML (``engine.book_file``).

The text's charset is the one declared (the file part's ``Content-Type``, or the request's for JSON),
else UTF-8 with or without a byte-order mark; bytes that do not decode are refused with their offset.
"""

from __future__ import annotations

from email.message import Message
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import FormData

from booknlp_api.api.errors import ApiError
from booknlp_api.api.job_schemas import JobCreate, JobOptions
from booknlp_api.config import Settings
from booknlp_api.engine.book_file import book_text
from booknlp_api.engine.text import decode_text, strip_gutenberg
from booknlp_api.jobs.records import Submission

FILE_FIELD = "file"
_LIST_FIELDS = ("pipeline", "sections", "exclude")
_MAX_KEY = 255
MAX_FORM_FIELDS = 1000
_BOOLEANS = {"true": True, "false": False}
"""How a form spells a boolean; any other value stays a string, which the strict options refuse."""

_Options = TypeVar("_Options", bound=JobOptions)


async def read_submission(request: Request, settings: Settings) -> Submission:
    content_type, charset = content_type_of(request.headers.get("content-type", ""))
    options: JobOptions
    if content_type == "application/json":
        body = decode_text(await request.body(), charset=charset, max_bytes=settings.max_job_bytes)
        created = _validated(JobCreate, body, json=True)
        options, text = created, created.text
    elif content_type == "multipart/form-data":
        options, text = await _from_form(request, settings)
    else:
        raise ApiError(415, "unsupported_media_type", "send the job as JSON (application/json) or as a file upload "
                                                      f"(multipart/form-data), not {content_type or 'no content type'}")
    return submission_of(options, text, options.book_id, idempotency_key(request))


def submission_of(options: JobOptions, text: str, book_id: str, key: str | None = None) -> Submission:
    offset = 0
    if options.strip_gutenberg:
        stripped = strip_gutenberg(text)
        text, offset = stripped.text, stripped.offset
    return Submission(text=text, book_id=book_id, model=options.model,
                      pipeline=None if options.pipeline is None else tuple(options.pipeline),
                      sections=options.kept_sections(), cache=options.cache, precision=options.precision,
                      idempotency_key=key, text_offset=offset)


async def _from_form(request: Request, settings: Settings) -> tuple[JobOptions, str]:
    # Lists come as repeated fields, and the schema does not forbid repeats: room for many, within the body cap.
    form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=settings.max_job_bytes)
    upload = form.get(FILE_FIELD)
    if upload is None:
        missing = [{"loc": ["body", FILE_FIELD], "msg": "Field required", "type": "missing"}]
        raise ApiError(422, "validation_error",
                       f"a multipart submission carries the text as a part named {FILE_FIELD!r}", missing)
    options = form_options(form)
    if isinstance(upload, str):  # a plain form field: already text
        return options, plain_text(upload)
    media_type, charset = content_type_of(upload.content_type or "")
    text = book_text(await upload.read(), filename=upload.filename or "", media_type=media_type, charset=charset,
                     max_bytes=settings.max_job_bytes)
    return options, text


def plain_text(value: str) -> str:
    """A book sent as a plain form field, checked like JSON's ``text`` (422 when blank)."""
    return _validated(JobCreate, {"text": value}).text


def form_options(form: FormData) -> JobOptions:
    """The options sent as form fields beside the file parts (lists comma-separated)."""
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name == FILE_FIELD or not isinstance(value, str):
            continue
        if name in _LIST_FIELDS:
            fields.setdefault(name, []).extend(part.strip() for part in value.split(",") if part.strip())
        elif JobOptions.model_fields.get(name) is not None and JobOptions.model_fields[name].annotation is bool:
            fields[name] = _BOOLEANS.get(value, value)
        else:
            fields[name] = value
    return _validated(JobOptions, fields)


def _validated(model: type[_Options], data: Any, *, json: bool = False) -> _Options:
    try:
        return model.model_validate_json(data) if json else model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        if errors[0]["type"] == "json_invalid":
            raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {errors[0]['msg']}") from None
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in errors]) from None


def content_type_of(header: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = header
    charset = message.get_param("charset")
    return message.get_content_type() if header else "", charset if isinstance(charset, str) else None


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= _MAX_KEY and key.isprintable() and key.isascii()):
        raise ApiError(422, "invalid_idempotency_key", f"Idempotency-Key must be 1-{_MAX_KEY} printable ASCII "
                                                       "characters, e.g. a UUID")
    return key
