"""Book files as uploaded: EPUB (spine order, front and back matter skipped) and HTML become plain text.

The EPUBs are real ones the tests write (tests/epub_books.py) from The Call of the Wild in ../shared/data.
"""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest

from booknlp_api.engine.book_file import book_text
from booknlp_api.engine.epub import InvalidEpub, epub_text, is_epub
from booknlp_api.engine.html_text import html_text, markup_charset
from booknlp_api.engine.text import TextTooLarge, UndecodableText, UnknownCharset
from tests.epub_books import Epub, chapter_xhtml, declared_xhtml, wild_chapters, wild_epub


def test_an_epub3_reads_in_spine_order_without_its_marked_front_and_back_matter() -> None:
    data, expected = wild_epub(chapters=3)
    assert is_epub(data)
    text = epub_text(data, max_bytes=10_000_000)
    assert text == expected
    assert text.startswith("Chapter I. Into the Primitive\n\n“Old longings nomadic leap,")
    assert "Chapter II. The Law of Club and Fang" in text
    for absent in ("COVER IMAGE", "TITLE PAGE", "COLOPHON", "tracking", "margin"):
        assert absent not in text


def test_the_spine_decides_the_order_not_the_file_names() -> None:
    (h1, p1), (h2, p2) = wild_chapters(2)
    book = Epub().add("z.xhtml", chapter_xhtml(h1, p1)).add("a.xhtml", chapter_xhtml(h2, p2))
    text = epub_text(book.bytes(), max_bytes=10_000_000)
    assert text.index(h1) < text.index(h2)


def test_an_epub2_guide_and_non_linear_items_mark_what_is_skipped() -> None:
    (heading, paragraphs), = wild_chapters(1)
    book = Epub(version="2.0", guide=[("title-page", "title.xhtml"), ("text", "c0.xhtml"), ("notes", "notes.xhtml")])
    book.add("preface.xhtml", chapter_xhtml("Preface", ["BEFORE THE TEXT LANDMARK"]))
    book.add("title.xhtml", chapter_xhtml("Title", ["TITLE PAGE"]))
    book.add("c0.xhtml", chapter_xhtml(heading, paragraphs))
    book.add("popup.xhtml", chapter_xhtml("Popup", ["NON LINEAR"]), linear=False)
    book.add("notes.xhtml", chapter_xhtml("Notes", ["NOTES TEXT"]))
    assert epub_text(book.bytes(), max_bytes=10_000_000) == "\n\n".join([heading, *paragraphs])


def test_sections_marked_as_front_matter_inside_a_chapter_file_are_dropped() -> None:
    xhtml = chapter_xhtml("Chapter I.", ["Buck did not read the newspapers."]).replace(
        "<section>", '<section epub:type="dedication"><p>TO MY DOG</p></section><section>')
    assert epub_text(Epub().add("c.xhtml", xhtml).bytes(), 10_000) == "Chapter I.\n\nBuck did not read the newspapers."


def test_an_epub_cannot_unpack_past_the_size_limit() -> None:
    data, expected = wild_epub(chapters=3)
    with pytest.raises(TextTooLarge, match="once the EPUB is unpacked"):
        epub_text(data, max_bytes=len(expected) // 2)


@pytest.mark.parametrize("data", [b"PK\x03\x04mimetype not really a zip", b"",
                                  Epub().add("c.xhtml", chapter_xhtml("Cover", ["x"], "cover")).bytes()],
                         ids=["corrupt", "empty", "only front matter"])
def test_a_broken_or_empty_epub_is_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidEpub):
        book_text(data, filename="book.epub", max_bytes=1_000_000)


def test_a_zip_without_its_container_is_not_a_readable_epub() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
    with pytest.raises(InvalidEpub, match="not a readable EPUB"):
        epub_text(buffer.getvalue(), 1000)


def test_html_keeps_paragraphs_and_drops_markup_scripts_and_styles() -> None:
    page = ("<html><head><title>T</title><style>body{}</style></head><body><h1>Chapter  I</h1>"
            "<p>“Hello,”\n said <i>Buck</i> &amp; Curly.<br>Spitz &mdash; growled.</p><script>x()</script>"
            "<ul><li>one<li>two</ul></body></html>")
    assert html_text(page) == "Chapter I\n\n“Hello,” said Buck & Curly.\n\nSpitz — growled.\n\none\n\ntwo"


def test_the_format_is_told_by_content_name_or_media_type_and_gzip_is_inflated() -> None:
    data, expected = wild_epub(chapters=1)
    assert book_text(gzip.compress(data), filename="wild.epub.gz") == expected
    assert book_text(data, filename="upload") == expected  # recognised by its mimetype member
    page = b"<p>Buck</p><p>Spitz</p>"
    assert book_text(page, filename="wild.HTML") == book_text(page, media_type="text/html") == "Buck\n\nSpitz"
    assert book_text(page, filename="wild.txt") == "<p>Buck</p><p>Spitz</p>"


CAFE = ["“Café,” said Buck, “is not for dogs.”", "Spitz’s answer — a growl."]
"""Characters that differ between UTF-8, ISO-8859-1 and windows-1252 (curly quotes, é, dash)."""


@pytest.mark.parametrize(("label", "how"), [("windows-1252", "xml"), ("ISO-8859-1", "xml"), ("windows-1252", "meta"),
                                            ("iso-8859-1", "http-equiv")])
def test_an_epub_document_is_read_in_the_encoding_it_declares(label: str, how: str) -> None:
    # ISO-8859-1 is read as windows-1252, as browsers do: its curly quotes are in the bytes either way
    chapter = declared_xhtml("Chapter I.", CAFE, "cp1252", label, how)
    book = Epub().add("c0.xhtml", chapter).add("c1.xhtml", chapter_xhtml("Chapter II.", ["Buck ran."]))
    assert epub_text(book.bytes(), 100_000) == "\n\n".join(["Chapter I.", *CAFE, "Chapter II.", "Buck ran."])


def test_other_declared_encodings_and_a_byte_order_mark_are_honoured() -> None:
    koi8 = declared_xhtml("Глава I.", ["Бэк не читал газет."], "koi8-r", "KOI8-R", "meta")
    assert epub_text(Epub().add("c.xhtml", koi8).bytes(), 100_000) == "Глава I.\n\nБэк не читал газет."
    # a UTF-8 byte-order mark outranks a declaration that contradicts it
    marked = b"\xef\xbb\xbf" + declared_xhtml("Chapter I.", CAFE, "utf-8", "windows-1252")
    assert epub_text(Epub().add("c.xhtml", marked).bytes(), 100_000) == "\n\n".join(["Chapter I.", *CAFE])


def test_bytes_invalid_in_the_declared_encoding_are_refused_with_the_document_and_offset() -> None:
    undeclared = chapter_xhtml("Chapter I.", CAFE).encode("cp1252")  # says UTF-8, holds windows-1252
    with pytest.raises(UndecodableText, match=r"of OEBPS/text/c\.xhtml .* not valid utf-8") as raised:
        epub_text(Epub().add("c.xhtml", undeclared).bytes(), 100_000)
    assert undeclared[raised.value.offset] == 0x93  # the opening curly quote
    undefined = declared_xhtml("Chapter I.", ["Buck \x81 ran."], "latin-1", "windows-1252")  # 0x81: no cp1252 char
    with pytest.raises(UndecodableText, match="not valid cp1252"):
        epub_text(Epub().add("c.xhtml", undefined).bytes(), 100_000)
    unknown = declared_xhtml("Chapter I.", ["Buck ran."], "utf-8", "x-no-such-encoding")
    with pytest.raises(UnknownCharset):
        epub_text(Epub().add("c.xhtml", unknown).bytes(), 100_000)


def test_an_html_file_declares_its_encoding_unless_the_upload_did() -> None:
    page = '<html><head><meta charset="windows-1252"></head><body><p>“Café”</p></body></html>'.encode("cp1252")
    assert book_text(page, filename="p.html") == "“Café”"
    assert book_text(page, filename="p.html", charset="iso-8859-15") == "\x93Café\x94"  # the transport's charset
    assert markup_charset(b'<meta http-equiv="content-type" content="text/html; charset=KOI8-R">') == "KOI8-R"
    assert markup_charset(b"<p>no declaration</p>") is None
