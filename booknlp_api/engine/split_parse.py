"""Fast mode's parse: the book cut at paragraph breaks, the pieces parsed by spaCy in parallel processes.

spaCy's parse is single-threaded, so on a machine with more than one core a whole-book parse leaves
the others idle. Here the text is cut into ``processes`` pieces of about equal length, each ending
right after a blank line; forked children parse all pieces but the first while this process parses
the first, and the pieces' Docs are joined back into one Doc (their texts concatenate to the whole
text, so every token keeps its character offset) that upstream's ``SpacyPipeline.process_doc`` turns
into tokens as usual. With ``pieces`` > 1 each process cuts its share again at paragraph breaks and
parses those pieces with ``nlp.pipe``, which costs less CPU than one long Doc.

Not exact: spaCy's tok2vec and parser see a few tokens either side of each cut differently (and the
parser always starts a sentence there), so tags or sentence boundaries near a cut may differ from
the whole-book parse. docs/PERFORMANCE.md ("Fast mode") gives the measured agreement.
"""

from __future__ import annotations

import multiprocessing
import re
from typing import Any

from spacy.tokens import Doc

_BREAK = re.compile(r"\n[ \t]*\n\s*")
"""A paragraph break (a blank line, with whatever whitespace follows it)."""

_PARSER: Any = None
"""The spaCy pipeline forked children parse with (set just before they are forked)."""

_PIECES = 1
"""Into how many pieces each process cuts its share (set with ``_PARSER``)."""


def cut_points(text: str, pieces: int) -> list[int]:
    """Where to cut ``text`` into at most ``pieces`` parts: after the paragraph break nearest each even share.

    Each cut lies right after a blank line (and the whitespace that follows it), so each part but the
    last ends in whitespace and the next starts with a word. Fewer parts when the text has too few breaks.
    """
    ends = [match.end() for match in _BREAK.finditer(text) if match.end() < len(text)]
    cuts: list[int] = []
    for share in range(1, pieces):
        target = len(text) * share // pieces
        if not ends:
            break
        nearest = min(ends, key=lambda end: abs(end - target))
        if (not cuts or nearest > cuts[-1]) and nearest > 0:
            cuts.append(nearest)
    return cuts


def split_parse(pipeline: Any, text: str, processes: int, pieces: int = 1) -> list[Any]:
    """Upstream's ``SpacyPipeline.tag(text)``, with the spaCy parse split over ``processes`` processes, each
    parsing its share as up to ``pieces`` pieces."""
    nlp = pipeline.spacy_nlp
    cuts = cut_points(text, processes)
    if not cuts and pieces <= 1:
        return pipeline.tag(text)
    shares = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    global _PARSER, _PIECES
    _PARSER, _PIECES = nlp, pieces
    try:
        if len(shares) == 1:
            return pipeline.process_doc(_parse_share(shares[0]))
        # fork: the children inherit the loaded pipeline instead of loading their own
        with multiprocessing.get_context("fork").Pool(len(shares) - 1) as pool:
            pending = [pool.apply_async(_parse_to_bytes, (share,)) for share in shares[1:]]
            first = _parse_share(shares[0])
            docs = [first, *(Doc(nlp.vocab).from_bytes(job.get()) for job in pending)]
    finally:
        _PARSER, _PIECES = None, 1
    return pipeline.process_doc(Doc.from_docs(docs, ensure_whitespace=False))


def _parse_share(text: str) -> Doc:
    """One process's share: whole, or cut at paragraph breaks into pieces that ``nlp.pipe`` parses.

    Why pieces: spaCy parses a few shorter Docs in less CPU time than one long one (measured: *The Call of
    the Wild* in 8 pieces 4.25 s against 5.76 s whole), at the price of the cuts' effect on the parse.
    """
    cuts = cut_points(text, _PIECES)
    if not cuts:
        return _PARSER(text)
    parts = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return Doc.from_docs(list(_PARSER.pipe(parts)), ensure_whitespace=False)


def _parse_to_bytes(text: str) -> bytes:
    return _parse_share(text).to_bytes()


class SplitParser:
    """Stands in for upstream's ``SpacyPipeline`` in the parse stage: ``tag`` parses in ``processes``
    processes, each its share in up to ``pieces`` pieces."""

    def __init__(self, pipeline: Any, processes: int, pieces: int = 1) -> None:
        self.pipeline = pipeline
        self.processes = processes
        self.pieces = pieces

    def tag(self, text: str) -> list[Any]:
        return split_parse(self.pipeline, text, self.processes, self.pieces)
