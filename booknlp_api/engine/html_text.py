"""The prose of an HTML or XHTML document: markup, scripts and styles dropped, one paragraph per block.

BookNLP reads plain text, where a blank line ends a paragraph, so every block element (paragraphs,
headings, list items, divisions) becomes its own paragraph and the whitespace inside one collapses
to single spaces. Parsed with the standard library's forgiving ``html.parser``: it never fetches
anything and expands only HTML's own character references.

Bytes are decoded as a browser would (``decode_markup``): a byte-order mark first, then a charset the
transport declared, then the document's XML declaration or ``<meta charset>`` / ``http-equiv`` in its
first 1024 bytes, else UTF-8; the labels ISO-8859-1 and ASCII mean windows-1252, as in the WHATWG
Encoding Standard (files so labelled often hold its curly quotes). Bytes invalid in that encoding are
refused (``UndecodableText``).
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from booknlp_api.engine.text import BYTE_ORDER_MARKS, decode_text

SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "math", "iframe"})
"""Elements whose content is never prose."""
BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "td", "th", "tr", "ul",
})
_VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
_SPACES = re.compile(r"\s+")
_PRESCAN = 1024
"""How far into a document a browser looks for its declared encoding."""
_XML_DECLARATION = re.compile(rb"""^\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_AS_BROWSERS_READ = {"iso8859-1": "cp1252", "ascii": "cp1252",
                     # a UTF-16 label found by reading the bytes as ASCII cannot be right: they are not UTF-16
                     "utf-16": "utf-8", "utf-16-le": "utf-8", "utf-16-be": "utf-8"}


class _Prose(HTMLParser):
    def __init__(self, skipped_types: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.skipped_types = skipped_types
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.open: list[tuple[str, bool]] = []
        """Open elements and whether each hides its content."""

    @property
    def hidden(self) -> bool:
        return any(hides for _, hides in self.open)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_TAGS:
            self._end_paragraph()
        if tag in _VOID_TAGS:
            return
        types = set((dict(attrs).get("epub:type") or "").split())
        self.open.append((tag, tag in SKIPPED_TAGS or bool(types & self.skipped_types)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_TAGS:
            self._end_paragraph()

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCK_TAGS:
            self._end_paragraph()
        # HTML lets some end tags go unwritten: close back to the matching element, if it is open at all.
        for depth in range(len(self.open) - 1, -1, -1):
            if self.open[depth][0] == tag:
                del self.open[depth:]
                break

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.current.append(data)

    def _end_paragraph(self) -> None:
        paragraph = _SPACES.sub(" ", "".join(self.current)).strip()
        if paragraph:
            self.paragraphs.append(paragraph)
        self.current = []

    def finish(self) -> list[str]:
        self.close()
        self._end_paragraph()
        return self.paragraphs


def markup_charset(data: bytes) -> str | None:
    """The encoding an HTML or XHTML document declares in itself; None when it declares none or has a BOM."""
    if data.startswith(BYTE_ORDER_MARKS):
        return None
    head = data[:_PRESCAN]
    found = _XML_DECLARATION.match(head) or _META_CHARSET.search(head)
    if found is None:
        return None
    label = found.group(1).decode("ascii")
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return label  # decode_text refuses it as an unknown charset
    return _AS_BROWSERS_READ.get(name, label)


def decode_markup(data: bytes, charset: str | None = None) -> str:
    """An HTML or XHTML document's bytes as text: a BOM, else ``charset`` (the transport's), else what the
    document declares, else UTF-8."""
    declared = None if data.startswith(BYTE_ORDER_MARKS) else charset or markup_charset(data)
    return decode_text(data, charset=declared)


def html_paragraphs(markup: str, skipped_types: frozenset[str] = frozenset()) -> list[str]:
    """The document's paragraphs in order; elements with an ``epub:type`` in ``skipped_types`` are left out."""
    parser = _Prose(skipped_types)
    parser.feed(markup)
    return parser.finish()


def html_text(markup: str) -> str:
    """The document as plain text, paragraphs separated by blank lines."""
    return "\n\n".join(html_paragraphs(markup))
