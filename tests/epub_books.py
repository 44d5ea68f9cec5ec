"""Real EPUB files written by the tests: a zip with the ``mimetype`` member first and stored, a container,
an OPF package (manifest, spine, optional EPUB 2 guide) and one XHTML document per chapter."""

from __future__ import annotations

import html
import io
import itertools
import re
import zipfile
from dataclasses import dataclass, field

from benchmarks.corpus import text_path

_CHAPTER = re.compile(r"^Chapter [IVXLC]+\..*$", re.MULTILINE)
_XHTML = ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
          '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">\n'
          '<head><title>{title}</title><style>p {{ margin: 0 }}</style>'
          '<script>var tracking = "never prose";</script></head>\n<body{body_type}>\n{body}\n</body></html>\n')


def wild_chapters(count: int) -> list[tuple[str, list[str]]]:
    """The first ``count`` chapters of The Call of the Wild: (heading, paragraphs with lines re-joined)."""
    text = text_path("the_call_of_the_wild.txt").read_text(encoding="utf-8")
    starts = [m.start() for m in _CHAPTER.finditer(text)] + [len(text)]
    chapters = []
    for start, end in itertools.pairwise(starts[:count + 1]):
        heading, _, body = text[start:end].partition("\n")
        paragraphs = [" ".join(block.split()) for block in re.split(r"\n\s*\n", body) if block.strip()]
        chapters.append((heading.strip(), paragraphs))
    return chapters


def chapter_xhtml(heading: str, paragraphs: list[str], body_type: str = "") -> str:
    body = f"<section><h1>{html.escape(heading)}</h1>\n" + "\n".join(
        f"<p>{html.escape(p)}</p>" for p in paragraphs) + "\n</section>"
    return _XHTML.format(title=html.escape(heading), body=body,
                         body_type=f' epub:type="{body_type}"' if body_type else "")


def declared_xhtml(heading: str, paragraphs: list[str], codec: str, label: str, how: str = "xml") -> bytes:
    """A chapter encoded with ``codec`` that declares ``label`` as its encoding: in its XML declaration
    (``xml``), a ``<meta charset>`` (``meta``) or a ``<meta http-equiv>`` (``http-equiv``)."""
    xhtml = chapter_xhtml(heading, paragraphs)
    declaration = '<?xml version="1.0" encoding="utf-8"?>\n'
    if how == "xml":
        xhtml = xhtml.replace(declaration, f'<?xml version="1.0" encoding="{label}"?>\n')
    else:
        meta = f'<meta charset="{label}"/>' if how == "meta" else \
            f'<meta http-equiv="Content-Type" content="text/html; charset={label}"/>'
        xhtml = xhtml.replace(declaration, "").replace("<head>", f"<head>{meta}")
    return xhtml.encode(codec)


@dataclass
class Epub:
    """An EPUB being written: documents in spine order, then ``bytes()``."""

    version: str = "3.0"
    documents: list[tuple[str, str | bytes, str]] = field(default_factory=list)
    """(file name, XHTML (a str is written as UTF-8), spine attributes)."""
    guide: list[tuple[str, str]] = field(default_factory=list)
    landmarks: list[tuple[str, str]] = field(default_factory=list)
    """(epub:type, file name) links in the EPUB 3 navigation document's landmarks."""

    def add(self, name: str, xhtml: str | bytes, linear: bool = True) -> Epub:
        self.documents.append((name, xhtml, "" if linear else ' linear="no"'))
        return self

    def bytes(self) -> bytes:
        items = "".join(f'<item id="d{i}" href="text/{name}" media-type="application/xhtml+xml"/>'
                        for i, (name, _, _) in enumerate(self.documents))
        spine = "".join(f'<itemref idref="d{i}"{attrs}/>' for i, (_, _, attrs) in enumerate(self.documents))
        nav = ""
        if self.landmarks:
            items += '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
            nav = _XHTML.format(title="Contents", body_type="", body=(
                '<nav epub:type="landmarks"><ol>' + "".join(
                    f'<li><a epub:type="{kind}" href="text/{name}">{kind}</a></li>' for kind, name in self.landmarks)
                + "</ol></nav>"))
        guide = ("<guide>" + "".join(f'<reference type="{kind}" href="text/{name}" title="{kind}"/>'
                                     for kind, name in self.guide) + "</guide>") if self.guide else ""
        opf = (f'<?xml version="1.0" encoding="utf-8"?>\n<package xmlns="http://www.idpf.org/2007/opf" '
               f'version="{self.version}" unique-identifier="id"><metadata '
               'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Call of the Wild</dc:title>'
               f'<dc:identifier id="id">test</dc:identifier></metadata><manifest>{items}</manifest>'
               f"<spine>{spine}</spine>{guide}</package>")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
            book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
            book.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" '
                          'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                          '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                          "</rootfiles></container>")
            book.writestr("OEBPS/content.opf", opf)
            if nav:
                book.writestr("OEBPS/nav.xhtml", nav)
            for name, xhtml, _ in self.documents:
                book.writestr(f"OEBPS/text/{name}", xhtml)
        return buffer.getvalue()


def wild_epub(chapters: int = 2) -> tuple[bytes, str]:
    """An EPUB 3 of the first chapters with a cover, a title page and a colophon marked as front/back matter,
    and the plain text it should read as."""
    parts = wild_chapters(chapters)
    book = Epub(landmarks=[("cover", "cover.xhtml"), ("bodymatter", "c0.xhtml")])
    book.add("cover.xhtml", chapter_xhtml("Cover", ["COVER IMAGE CAPTION"]))
    book.add("title.xhtml", chapter_xhtml("Title", ["TITLE PAGE, Jack London"], body_type="frontmatter titlepage"))
    for i, (heading, paragraphs) in enumerate(parts):
        book.add(f"c{i}.xhtml", chapter_xhtml(heading, paragraphs))
    book.add("colophon.xhtml", chapter_xhtml("Colophon", ["COLOPHON TEXT"], body_type="backmatter colophon"))
    expected = "\n\n".join("\n\n".join([heading, *paragraphs]) for heading, paragraphs in parts)
    return book.bytes(), expected
