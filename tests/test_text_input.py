"""Text as clients send it: charsets, byte-order marks, gzip, undecodable bytes, Gutenberg boilerplate."""

from __future__ import annotations

import codecs
import gzip

import pytest

from benchmarks.corpus import text_path
from booknlp_api.engine.errors import InvalidInput, InvalidText
from booknlp_api.engine.text import TextTooLarge, UndecodableText, UnknownCharset, decode_text, strip_gutenberg

CAROL = text_path("a_christmas_carol_gutenberg.txt")
LINE = "“Bah,” said Scrooge, “Humbug!” — naïve café."


@pytest.mark.parametrize("data", [LINE.encode(), codecs.BOM_UTF8 + LINE.encode(), LINE.encode("utf-16")],
                         ids=["utf-8", "utf-8 with BOM", "utf-16 with BOM"])
def test_utf_texts_decode_without_a_declared_charset(data: bytes) -> None:
    assert decode_text(data) == LINE


def test_a_declared_charset_is_honoured() -> None:
    latin = "naïve café, 10 £".encode("iso-8859-1")
    assert decode_text(latin, charset="ISO-8859-1") == "naïve café, 10 £"
    assert decode_text(codecs.BOM_UTF8 + b"plain", charset="utf-8") == "plain"
    with pytest.raises(UndecodableText):
        decode_text(latin)  # the same bytes read as UTF-8


def test_undecodable_bytes_are_refused_naming_their_offset() -> None:
    data = b"Marley was dead: to begin with.\xff\xfe There is no doubt."
    with pytest.raises(UndecodableText, match=r"byte 31 of the text \(0xff\) is not valid utf-8") as refused:
        decode_text(data)
    assert refused.value.offset == 31
    assert isinstance(refused.value, InvalidText)


def test_an_unknown_charset_is_invalid_input() -> None:
    with pytest.raises(UnknownCharset, match="unknown charset 'klingon'"):
        decode_text(b"text", charset="klingon")


def test_gzip_is_recognised_and_offsets_count_decompressed_bytes() -> None:
    assert decode_text(gzip.compress(LINE.encode())) == LINE
    assert decode_text(gzip.compress(LINE.encode("iso-8859-1", errors="replace")), charset="latin-1").startswith("?Bah")
    with pytest.raises(UndecodableText, match="byte 3 of the decompressed text"):
        decode_text(gzip.compress(b"abc\x80def"))


def test_sizes_are_capped_before_and_after_decompression() -> None:
    decode_text(b"x" * 100, max_bytes=100)
    with pytest.raises(TextTooLarge, match="larger than 100 bytes"):
        decode_text(b"x" * 101, max_bytes=100)
    bomb = gzip.compress(b"a" * 1_000_000)
    assert len(bomb) < 5_000
    with pytest.raises(TextTooLarge, match="100000 bytes once decompressed"):
        decode_text(bomb, max_bytes=100_000)


def test_a_broken_gzip_stream_is_invalid_text() -> None:
    with pytest.raises(InvalidText, match="cannot be decompressed"):
        decode_text(gzip.compress(LINE.encode())[:20])
    assert issubclass(TextTooLarge, InvalidInput)


def test_strip_gutenberg_keeps_the_book_and_drops_header_credit_and_licence() -> None:
    original = decode_text(CAROL.read_bytes())
    assert original.startswith("The Project Gutenberg EBook of A Christmas Carol")
    stripped = strip_gutenberg(original)
    assert stripped.text.startswith("A CHRISTMAS CAROL\n\nIN PROSE")
    assert stripped.text.endswith("God bless Us, Every One!")
    assert "gutenberg" not in stripped.text.lower()
    assert "Produced by" not in stripped.text
    assert original[stripped.offset:stripped.offset + len(stripped.text)] == stripped.text
    assert len(original) - len(stripped.text) > 19_000  # the licence alone is ~18K characters


def test_strip_gutenberg_handles_the_newer_markers_and_leaves_plain_texts_alone() -> None:
    book = "Chapter 1\n\nIt was a dark night."
    newer = ("The Project Gutenberg eBook of Something\n\n*** START OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\n\n"
             f"{book}\n\n*** END OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\n\nSection 1. General Terms")
    assert strip_gutenberg(newer).text == book
    plain = strip_gutenberg(f"\n{book}\n")
    assert (plain.text, plain.offset) == (book, 1)
