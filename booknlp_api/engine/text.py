"""Text as clients send it, turned into the ``str`` the engine analyses.

Bytes are decoded strictly: with the declared charset when there is one, else as UTF-8 (a byte-order
mark is dropped; a UTF-16 one is honoured). A gzip stream is recognised by its magic number and
inflated first, never past the size limit. Bytes that do not decode are refused with their offset.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from dataclasses import dataclass

from booknlp_api.engine.errors import InvalidInput, InvalidText

GZIP_MAGIC = b"\x1f\x8b"

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
BYTE_ORDER_MARKS = tuple(bom for bom, _ in _BOMS)

_START = re.compile(r"^\*{3}\s*START OF (?:THIS|THE) PROJECT GUTENBERG E-?BOOK.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(
    r"^(?:\*{3}\s*END OF (?:THIS|THE) PROJECT GUTENBERG E-?BOOK"
    r"|End of (?:the )?Project Gutenberg(?:'s)? E-?(?:Book|text)).*$",
    re.IGNORECASE | re.MULTILINE,
)
_PRODUCER = re.compile(r"\s*(?:Produced|Transcribed|Prepared) by\b.*?(?:\n[ \t]*\n|\Z)", re.IGNORECASE | re.DOTALL)


class UndecodableText(InvalidText):
    """Bytes that are not valid in the text's encoding; ``offset`` counts bytes from the start."""

    code = "undecodable_text"

    def __init__(self, encoding: str, offset: int, byte: int, compressed: bool, member: str | None = None) -> None:
        if member is not None:  # a document inside a book file (an EPUB's XHTML)
            where, fix = f"of {member}", "declare its encoding (<?xml ... encoding=...?> or <meta charset=...>)"
        else:
            where = "of the decompressed text" if compressed else "of the text"
            fix = "declare the charset (Content-Type: text/plain; charset=...)"
        super().__init__(f"byte {offset} {where} (0x{byte:02x}) is not valid {encoding}; send UTF-8, or {fix}")
        self.encoding = encoding
        self.offset = offset
        self.byte = byte
        self.member = member


class UnknownCharset(InvalidInput):
    code = "unknown_charset"

    def __init__(self, charset: str) -> None:
        super().__init__(f"unknown charset {charset!r}; use a name such as utf-8, utf-16 or iso-8859-1")
        self.charset = charset


class TextTooLarge(InvalidInput):
    """Raw or decompressed text above the configured limit."""

    code = "text_too_large"

    def __init__(self, limit: int, unit: str) -> None:
        super().__init__(f"the text is larger than {limit} {unit}")
        self.limit = limit
        self.unit = unit


def decode_text(data: bytes, *, charset: str | None = None, max_bytes: int | None = None) -> str:
    """The text in ``data`` (gzip-compressed or not), decoded strictly."""
    compressed = data.startswith(GZIP_MAGIC)
    if compressed:
        data = gunzip(data, max_bytes)
    elif max_bytes is not None and len(data) > max_bytes:
        raise TextTooLarge(max_bytes, "bytes")
    encoding = _encoding(data, charset)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        # single-byte codecs report themselves as "charmap": name the encoding instead
        name = encoding if exc.encoding == "charmap" else exc.encoding
        raise UndecodableText(name, exc.start, data[exc.start], compressed) from None


def _encoding(data: bytes, charset: str | None) -> str:
    if charset:
        try:
            name = codecs.lookup(charset).name
        except LookupError:
            raise UnknownCharset(charset) from None
        # A declared UTF-8 still tolerates the byte-order mark editors on Windows write.
        return "utf-8-sig" if name == "utf-8" else name
    return next((encoding for bom, encoding in _BOMS if data.startswith(bom)), "utf-8")


def gunzip(data: bytes, max_bytes: int | None) -> bytes:
    """The inflated bytes of a gzip stream, never more than ``max_bytes``."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            inflated = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidText(f"the text looks gzip-compressed but cannot be decompressed: {exc}") from None
    if max_bytes is not None and len(inflated) > max_bytes:
        raise TextTooLarge(max_bytes, "bytes once decompressed")
    return inflated


@dataclass(frozen=True)
class StrippedText:
    text: str
    offset: int
    """Characters of the original before ``text``: add it to a result's character offsets."""


def strip_gutenberg(text: str) -> StrippedText:
    """The book inside a Project Gutenberg file: without the header, the producer credit and the licence.

    A text without Gutenberg's markers is returned unchanged.
    """
    start_marker = _START.search(text)
    start = start_marker.end() if start_marker else 0
    end_marker = _END.search(text, start)
    end = end_marker.start() if end_marker else len(text)
    if start_marker:
        credit = _PRODUCER.match(text, start, end)
        start = credit.end() if credit else start
    body = text[start:end]
    lead = len(body) - len(body.lstrip())
    return StrippedText(body.strip(), start + lead)
