"""A batch read from the request: several book files, or one archive of them, plus the job options.

Multipart only: each ``file`` part is a book (text, EPUB, HTML; gzipped or not) or a ``.zip``/``.tar.gz``
of books (``engine.book_archive``, with the archive limits from the settings). Each book's name is its
file name without folders and extensions, made unique within the batch; it is also its ``book_id``.
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from booknlp_api.api.errors import ApiError
from booknlp_api.api.job_input import (
    FILE_FIELD,
    MAX_FORM_FIELDS,
    content_type_of,
    form_options,
    plain_text,
    submission_of,
)
from booknlp_api.config import Settings
from booknlp_api.engine.book_archive import ArchiveLimits, BookFile, books_in_archive, is_archive
from booknlp_api.engine.book_file import book_text
from booknlp_api.engine.errors import InvalidInput
from booknlp_api.jobs.records import Submission

_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS = re.compile(r"(\.(txt|epub|html?|xhtml|gz))+$", re.IGNORECASE)


async def read_batch(request: Request, settings: Settings) -> list[tuple[str, Submission]]:
    """The batch's books as (name, submission), in the order sent."""
    content_type, _ = content_type_of(request.headers.get("content-type", ""))
    if content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send a batch as multipart/form-data: one `file` part per "
                                                      "book, or one .zip/.tar.gz of books")
    form = await request.form(max_files=settings.max_batch_books, max_fields=MAX_FORM_FIELDS + settings.max_batch_books)
    uploads = form.getlist(FILE_FIELD)
    if not uploads:
        missing = [{"loc": ["body", FILE_FIELD], "msg": "Field required", "type": "missing"}]
        raise ApiError(422, "validation_error", f"a batch carries its books as file parts named {FILE_FIELD!r}",
                       missing)
    if len(uploads) > settings.max_batch_books:  # the contract's maxItems; an archive's members are counted below
        too_many = [{"loc": ["body", FILE_FIELD], "msg": f"List should have at most {settings.max_batch_books} items",
                     "type": "too_long"}]
        raise ApiError(422, "validation_error", f"a batch holds at most {settings.max_batch_books} {FILE_FIELD!r} "
                                                f"parts, not {len(uploads)}", too_many)
    if "book_id" in form:  # each book is named by its file
        raise RequestValidationError([{"loc": ("body", "book_id"), "msg": "Extra inputs are not permitted: a batch's "
                                       "books are named by their files", "type": "extra_forbidden", "input": None}])
    options = form_options(form)
    limits = ArchiveLimits(max_members=settings.max_batch_books, max_total_bytes=settings.max_batch_bytes,
                           max_member_bytes=settings.max_job_bytes, max_ratio=settings.max_archive_ratio)
    files: list[tuple[BookFile, str]] = []
    for upload in uploads:
        if isinstance(upload, str):  # a plain field: the text itself
            files.append((BookFile("book", plain_text(upload).encode()), "text/plain; charset=utf-8"))
            continue
        data, name = await upload.read(), upload.filename or "book"
        if is_archive(data, name):
            files += [(book, "") for book in books_in_archive(data, name, limits)]
        else:
            files.append((BookFile(name, data), upload.content_type or ""))
    if not files:
        raise ApiError(422, "empty_batch", "the batch holds no book files")
    if len(files) > settings.max_batch_books:
        raise ApiError(413, "archive_too_large", f"a batch holds at most {settings.max_batch_books} books, "
                                                 f"not {len(files)}", {"limit": settings.max_batch_books})
    books, names = [], set()
    for book, declared in files:
        name = _unique(_book_name(book.name), names)
        books.append((name, submission_of(options, _text(book, declared, settings), name)))
    return books


def _text(book: BookFile, declared: str, settings: Settings) -> str:
    media_type, charset = content_type_of(declared)
    try:
        return book_text(book.data, filename=book.name, media_type=media_type, charset=charset,
                         max_bytes=settings.max_job_bytes)
    except InvalidInput as exc:
        # Name the book: in a batch of hundreds, "byte 31 is not valid UTF-8" alone says too little.
        raise ApiError(413 if exc.code == "text_too_large" else 422, exc.code, f"{book.name}: {exc}",
                       {"book": book.name}) from None


def _book_name(filename: str) -> str:
    stem = _EXTENSIONS.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1])
    return _NAME.sub("_", stem).strip("._-")[:60] or "book"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate
