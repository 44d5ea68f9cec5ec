"""The benchmark texts shipped in ``benchmarks/texts/``: four public-domain novels, with checksums.

Benchmarks default to these files so that figures can be reproduced from a clone alone; every
benchmark also takes ``--text FILE`` for any other text. ``python -m benchmarks.corpus`` verifies them.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

TEXTS_DIR = Path(__file__).resolve().parent / "texts"


@dataclass(frozen=True)
class Text:
    name: str
    title: str
    sha256: str
    words: int  # whitespace-separated tokens, as counted in benchmarks/texts/README.md

    @property
    def path(self) -> Path:
        return TEXTS_DIR / self.name


TEXTS = {
    text.name: text
    for text in (
        Text("pride_and_prejudice.txt", "Austen, Pride and Prejudice (1813)",
             "aeab3887797bed30eecf8abd37bc45072a4289caa43df160cf96de0b037c62ad", 121_561),
        Text("the_call_of_the_wild.txt", "London, The Call of the Wild (1903)",
             "bd3a7115fa2cdb19ffe15f843bed1107a7cf340a76b94a21bbe795bc1508682d", 31_770),
        Text("a_christmas_carol_gutenberg.txt", "Dickens, A Christmas Carol (Project Gutenberg #46, as distributed)",
             "820a8aa531461c62738055688fd02d2e1a290924e585bd38ad9e18c80b54e7da", 31_559),
        Text("emma.txt", "Austen, Emma (1815)",
             "bc7d93fac48f1b5d1589bc2b2115d092186a0796142b9c6cfb973e4466b2095f", 157_437),
    )
}


class CorpusError(Exception):
    """A shipped text is missing or its bytes are not the ones recorded here."""


def text_path(name: str) -> Path:
    """The path of a shipped text, after checking its sha256 (a changed file would change every figure)."""
    text = TEXTS[name]
    if not text.path.is_file():
        raise CorpusError(f"{text.path} is missing")
    digest = hashlib.sha256(text.path.read_bytes()).hexdigest()
    if digest != text.sha256:
        raise CorpusError(f"{text.path}: sha256 {digest}, expected {text.sha256}")
    return text.path


def main() -> int:
    failed = 0
    for name, text in TEXTS.items():
        try:
            text_path(name)
        except CorpusError as error:
            failed += 1
            print(f"FAIL {error}")
        else:
            print(f"ok   {name}  {text.words:>7,} words  {text.title}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
