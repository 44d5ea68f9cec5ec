"""A book file as uploaded, whatever its format, turned into the plain text the engine analyses.

Plain text (``decode_text``), EPUB (``epub_text``) and HTML (``html_text``), each possibly gzipped (the
client uploads files gzipped). The format is told by the content itself where it can be (an EPUB starts
with its ``mimetype`` member), else by the file name's extension or the declared media type.
"""

from __future__ import annotations

from booknlp_api.engine.epub import EPUB_MEDIA_TYPE, epub_text, is_epub
from booknlp_api.engine.html_text import decode_markup, html_text
from booknlp_api.engine.text import GZIP_MAGIC, TextTooLarge, decode_text, gunzip

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})
BOOK_SUFFIXES = (".txt", ".epub", *HTML_SUFFIXES)
"""File names a book may have, besides ``.gz`` after any of them."""


def book_text(data: bytes, *, filename: str = "", media_type: str = "", charset: str | None = None,
              max_bytes: int | None = None) -> str:
    """The text of a book file: EPUB, HTML or plain text, gzipped or not; at most ``max_bytes`` inflated."""
    name = filename.lower().removesuffix(".gz")
    if data.startswith(GZIP_MAGIC):
        data = gunzip(data, max_bytes)
    elif max_bytes is not None and len(data) > max_bytes:
        raise TextTooLarge(max_bytes, "bytes")
    if is_epub(data) or name.endswith(".epub") or media_type == EPUB_MEDIA_TYPE:
        return epub_text(data, max_bytes if max_bytes is not None else 1 << 62)
    if name.endswith(HTML_SUFFIXES) or media_type in HTML_MEDIA_TYPES:
        return html_text(decode_markup(data, charset))
    return decode_text(data, charset=charset)
