"""The prose of an HTML or XHTML document: markup, scripts and styles dropped, one paragraph per block.

BookNLP reads plain text, where a blank line ends a paragraph, so every block element (paragraphs,
headings, list items, divisions) becomes its own paragraph and the whitespace inside one collapses
to single spaces. Parsed with the standard library's forgiving ``html.parser``: it never fetches
anything and expands only HTML's own character references.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "math", "iframe"})
"""Elements whose content is never prose."""
BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "td", "th", "tr", "ul",
})
_VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
_SPACES = re.compile(r"\s+")


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


def html_paragraphs(markup: str, skipped_types: frozenset[str] = frozenset()) -> list[str]:
    """The document's paragraphs in order; elements with an ``epub:type`` in ``skipped_types`` are left out."""
    parser = _Prose(skipped_types)
    parser.feed(markup)
    return parser.finish()


def html_text(markup: str) -> str:
    """The document as plain text, paragraphs separated by blank lines."""
    return "\n\n".join(html_paragraphs(markup))
