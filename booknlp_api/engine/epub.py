"""The text of an EPUB (2 or 3): the spine's documents in reading order, front and back matter left out.

An EPUB is a zip: ``META-INF/container.xml`` names the package document (OPF), whose manifest lists the
files and whose spine gives the reading order. Front and back matter is skipped where the book marks it:
EPUB 3 navigation landmarks and ``epub:type`` on a document's body or sections, the EPUB 2 guide, and
spine items marked ``linear="no"``; where a landmark (EPUB 3 ``bodymatter``, EPUB 2 ``text``) says where
the body starts, what comes before it is front matter. Each document's prose is read by ``html_text``;
paragraphs and documents (usually chapters) are separated by blank lines. Reading never inflates more
than ``max_bytes`` in all, so a small EPUB cannot unpack into a huge one.
"""

from __future__ import annotations

import posixpath
import zipfile
from io import BytesIO
from urllib.parse import unquote
from xml.etree import ElementTree

from booknlp_api.engine.errors import InvalidText
from booknlp_api.engine.html_text import decode_markup, html_paragraphs
from booknlp_api.engine.text import TextTooLarge, UndecodableText

EPUB_MEDIA_TYPE = "application/epub+zip"
_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
FRONT_AND_BACK = frozenset({
    # EPUB 3 structural semantics (epub:type, landmarks)
    "frontmatter", "backmatter", "cover", "titlepage", "halftitlepage", "copyright-page", "toc", "loi", "lot",
    "dedication", "epigraph", "acknowledgments", "colophon", "index", "appendix", "bibliography", "glossary",
    "imprint", "imprimatur", "contributors", "other-credits", "errata", "landmarks", "page-list",
    "footnotes", "endnotes", "rearnotes", "afterword",
    # EPUB 2 guide reference types
    "title-page", "copyright", "notes", "acknowledgements",
})
_BODY_STARTS = frozenset({"bodymatter", "text"})
_EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"


class InvalidEpub(InvalidText):
    code = "invalid_epub"


def is_epub(data: bytes) -> bool:
    """A zip whose first member is the ``mimetype`` file EPUB requires."""
    return data.startswith(b"PK\x03\x04") and data[30:38] == b"mimetype"


def epub_text(data: bytes, max_bytes: int) -> str:
    """The book's prose in reading order, chapters separated by blank lines."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as book:
            return _Book(book, max_bytes).text()
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError, EOFError) as exc:
        raise InvalidEpub(f"the file is not a readable EPUB: {exc}") from None


class _Book:
    def __init__(self, book: zipfile.ZipFile, max_bytes: int) -> None:
        self.book = book
        self.left = max_bytes
        self.max_bytes = max_bytes

    def read(self, name: str) -> bytes:
        info = self.book.getinfo(name)
        with self.book.open(info) as member:
            data = member.read(self.left + 1)
        self.left -= len(data)
        if self.left < 0:
            raise TextTooLarge(self.max_bytes, "bytes once the EPUB is unpacked")
        return data

    def xml(self, name: str) -> ElementTree.Element:
        return ElementTree.fromstring(self.read(name))

    def text(self) -> str:
        container = self.xml("META-INF/container.xml")
        rootfile = next((e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile"), None)
        if not rootfile:
            raise InvalidEpub("META-INF/container.xml names no package document (rootfile)")
        package = self.xml(rootfile)
        base = posixpath.dirname(rootfile)
        manifest = {item.get("id"): item for item in _children(package, "manifest", "item")}
        spine = [(_path(base, manifest[ref.get("idref")].get("href", "")), manifest[ref.get("idref")])
                 for ref in _children(package, "spine", "itemref")
                 if ref.get("linear", "yes") != "no" and ref.get("idref") in manifest]
        spine = [(path, item) for path, item in spine if item.get("media-type") in _XHTML_TYPES]
        if not spine:
            raise InvalidEpub("the EPUB's spine lists no XHTML document")
        marks = self._guide(package, base) + self._landmarks(manifest, base)
        skipped = {path for path, kind in marks if kind in FRONT_AND_BACK}
        starts = [path for path, kind in marks if kind in _BODY_STARTS]
        order = [path for path, _ in spine]
        first = min((order.index(path) for path in starts if path in order), default=0)
        chapters = ["\n\n".join(html_paragraphs(self.document(path), FRONT_AND_BACK))
                    for path in order[first:] if path not in skipped]
        text = "\n\n".join(chapter for chapter in chapters if chapter)
        if not text.strip():
            raise InvalidEpub("the EPUB holds no text outside its front and back matter")
        return text

    def document(self, path: str) -> str:
        """An XHTML document's text, in the encoding it declares (UTF-8 when it declares none)."""
        try:
            return decode_markup(self.read(path))
        except UndecodableText as exc:
            raise UndecodableText(exc.encoding, exc.offset, exc.byte, compressed=False, member=path) from None

    @staticmethod
    def _guide(package: ElementTree.Element, base: str) -> list[tuple[str, str]]:
        """EPUB 2: ``<guide><reference type="..." href="..."/>``."""
        return [(_path(base, ref.get("href", "")), (ref.get("type") or "").lower())
                for ref in _children(package, "guide", "reference")]

    def _landmarks(self, manifest: dict[str | None, ElementTree.Element], base: str) -> list[tuple[str, str]]:
        """EPUB 3: the navigation document's ``<nav epub:type="landmarks">`` links, by their ``epub:type``."""
        nav = next((item for item in manifest.values() if "nav" in (item.get("properties") or "").split()), None)
        if nav is None:
            return []
        nav_path = _path(base, nav.get("href", ""))
        marks: list[tuple[str, str]] = []
        for element in self.xml(nav_path).iter():
            if _local(element.tag) == "nav" and "landmarks" in (element.get(_EPUB_TYPE) or "").split():
                for link in element.iter():
                    if _local(link.tag) == "a" and link.get("href"):
                        target = _path(posixpath.dirname(nav_path), link.get("href", ""))
                        marks += [(target, kind) for kind in (link.get(_EPUB_TYPE) or "").split()]
        return marks


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(root: ElementTree.Element, parent: str, child: str) -> list[ElementTree.Element]:
    return [element for holder in root if _local(holder.tag) == parent
            for element in holder if _local(element.tag) == child]


def _path(base: str, href: str) -> str:
    """A member name from an href relative to ``base``, without its fragment."""
    return posixpath.normpath(posixpath.join(base, unquote(href.split("#", 1)[0])))
