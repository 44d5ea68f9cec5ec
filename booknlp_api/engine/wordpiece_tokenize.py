"""Replaces ``BertTokenizer.tokenize`` on the speaker and coref tokenizers: the same word pieces, remembered.

Upstream tokenizes word by word with the slow Python tokenizer, and the speaker model does it again
for every quote window a word falls in (each word of a novel is tokenized dozens of times: ~17 s
of a novel's run). A tokenizer's output depends only on the string and on the tokens added when
the component was built, so each distinct string is tokenized once and its pieces reused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_ENTRIES = 500_000
"""Distinct strings kept before the memory is cleared (a novel has ~10-30K; a corpus keeps adding)."""


class RememberedTokenize:
    """``tokenizer.tokenize`` with each string's pieces remembered; returns a fresh list each call."""

    def __init__(self, tokenize: Callable[..., list[str]]) -> None:
        self.tokenize = tokenize
        self.pieces: dict[str, tuple[str, ...]] = {}

    def __call__(self, text: str, **kwargs: Any) -> list[str]:
        if kwargs:
            return self.tokenize(text, **kwargs)
        found = self.pieces.get(text)
        if found is None:
            if len(self.pieces) >= MAX_ENTRIES:
                self.pieces.clear()
            found = self.pieces[text] = tuple(self.tokenize(text))
        # callers may extend or edit the list they get
        return list(found)


def remember_tokenize(tokenizer: Any) -> RememberedTokenize:
    """Install the remembering ``tokenize`` on this tokenizer instance (its class is untouched)."""
    if isinstance(tokenizer.tokenize, RememberedTokenize):
        return tokenizer.tokenize
    remembered = RememberedTokenize(tokenizer.tokenize)
    tokenizer.tokenize = remembered
    return remembered
