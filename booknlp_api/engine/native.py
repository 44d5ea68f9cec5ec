"""BookNLP's own output files, written byte for byte as ``EnglishBookNLP.process()`` writes them.

Which files exist depends on the pipeline, as upstream: ``.tokens`` (and ``.supersense``) when the
tagger ran, ``.entities`` with entity, ``.quotes`` with quote, ``.book`` with coref, and
``.book.html`` with quote and coref.
"""

from __future__ import annotations

import json
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any, TextIO

from booknlp_api.engine.pipeline import Pipeline
from booknlp_api.engine.stages import Book

EXTENSIONS = ("tokens", "entities", "quotes", "supersense", "book", "book.html")

_TOKEN_HEADER = ["paragraph_ID", "sentence_ID", "token_ID_within_sentence", "token_ID_within_document", "word",
                 "lemma", "byte_onset", "byte_offset", "POS_tag", "fine_POS_tag", "dependency_relation",
                 "syntactic_head_ID", "event"]
_QUOTE_HEADER = ["quote_start", "quote_end", "mention_start", "mention_end", "mention_phrase", "char_id", "quote"]
_CATEGORIES = ["FAC", "GPE", "LOC", "PER", "ORG", "VEH"]


def write_native(book: Book, pipeline: Pipeline, folder: Path, book_id: str) -> dict[str, Path]:
    """Write every file this pipeline produces; returns them by extension."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {
        "supersense": "supersense" in pipeline,
        "tokens": pipeline.tags,
        "book": "coref" in pipeline,
        "entities": "entity" in pipeline,
        "quotes": "quote" in pipeline,
        "book.html": "quote" in pipeline and "coref" in pipeline,
    }
    written: dict[str, Path] = {}
    for extension, writer in _WRITERS.items():
        if wanted[extension]:
            path = folder / f"{book_id}.{extension}"
            with path.open("w", encoding="utf-8") as out:
                writer(book, out)
            written[extension] = path
    return written


def _supersense(book: Book, out: TextIO) -> None:
    out.write("start_token\tend_token\tsupersense_category\ttext\n")
    for start, end, category, text in book.supersenses or []:
        out.write(f"{start}\t{end}\t{category}\t{text}\n")


def _tokens(book: Book, out: TextIO) -> None:
    out.write("\t".join(_TOKEN_HEADER) + "\n")
    for token in book.tokens:
        out.write(f"{token}\n")


def _book(book: Book, out: TextIO) -> None:
    json.dump(book.characters, out)


def _entities(book: Book, out: TextIO) -> None:
    out.write("COREF\tstart_token\tend_token\tprop\tcat\ttext\n")
    for assignment, (start, end, category, text) in zip(book.assignments or [], book.entities):
        prop, kind = category.split("_")[:2]
        out.write(f"{assignment}\t{start}\t{end}\t{prop}\t{kind}\t{text}\n")


def _quotes(book: Book, out: TextIO) -> None:
    out.write("\t".join(_QUOTE_HEADER) + "\n")
    assignments = book.assignments or []
    for (q_start, q_end), mention in zip(book.quotes, book.attributions or []):
        if mention is None:
            speaker: list[Any] = [None, None, None, None]
        else:
            start, end, _, text = book.entities[mention]
            speaker = [start, end, text, assignments[mention]]
        quote = " ".join(token.text for token in book.tokens[q_start:q_end + 1])
        out.write("\t".join(str(value) for value in [q_start, q_end, *speaker, quote]) + "\n")


def _canonical_names(book: Book) -> dict[int, Counter[str]]:
    # Upstream's weighting for the name shown next to each mention: proper 10, common 1, pronoun .001.
    weight = {"PROP": 10.0, "NOM": 1.0}
    names: dict[int, Counter[str]] = {}
    for coref, (_, _, category, text) in zip(book.assignments or [], book.entities):
        names.setdefault(coref, Counter())[text.lower()] += weight.get(category.split("_")[0], 0.001)
    return names


def _html(book: Book, out: TextIO) -> None:
    out.write("<html>")
    out.write('<head>\n\t\t  <meta charset="UTF-8">\n\t\t</head>')
    _html_characters(book, out)
    out.write("<p>\n")
    _html_major_entities(book, out)
    _html_text(book, out)
    out.write("</html>")


def _html_characters(book: Book, out: TextIO) -> None:
    out.write("<h2>Named characters</h2>\n")
    for character in (book.characters or {}).get("characters", []):
        char_id, mentions = character["id"], character["mentions"]
        if not mentions["proper"] and char_id != 0:  # 0 is the narrator
            continue
        proper = "/".join(f"{name['n']} ({name['c']})" for name in mentions["proper"])
        common = "/".join(f"{name['n']} ({name['c']})" for name in mentions["common"])
        if char_id == 0:
            proper = proper + "/[NARRATOR]" if proper else "[NARRATOR]"
        out.write(f"{character['count']} {proper} {common} <br />\n")


def _html_major_entities(book: Book, out: TextIO) -> None:
    out.write("<h2>Major entities (proper, common)</h2>")
    major: dict[tuple[str, str], dict[int, Counter[str]]] = {}
    for coref, (_, _, category, text) in zip(book.assignments or [], book.entities):
        prop, kind = category.split("_")[:2]
        if prop != "PRON":
            major.setdefault((prop, kind), {}).setdefault(coref, Counter())[text] += 1
    for kind in _CATEGORIES:
        out.write(f"<h3>{kind}</h3>")
        for prop in ("PROP", "NOM"):
            groups = major.get((prop, kind), {})
            totals = sorted(((coref, sum(c.values())) for coref, c in groups.items()),
                            key=lambda item: item[1], reverse=True)
            for coref, total in totals[:10]:
                names = "/".join(name for name, _ in groups[coref].most_common())
                out.write(f"{total} {names} <br />")
            out.write("<p>")


def _html_text(book: Book, out: TextIO) -> None:
    out.write("<h2>Text</h2>\n")
    names = _canonical_names(book)
    assignments = book.assignments or []
    before = [""] * len(book.tokens)
    after = [""] * len(book.tokens)
    for coref, (start, end, _, _) in zip(assignments, book.entities):
        name = names[coref].most_common(1)[0][0]
        before[start] += '<font color="#D0D0D0">[</font>'
        after[end] = (f'<font color="#D0D0D0">]</font><font color="#FF00FF"><sub>{coref}-{name}</sub></font>'
                      + after[end])
    for (start, end), mention in zip(book.quotes, book.attributions or []):
        if mention is None:
            speaker, name = "None", "None"
        else:
            speaker = str(assignments[mention])
            name = names[assignments[mention]].most_common(1)[0][0]
        before[start] += '<font color="#666699">'
        after[end] += f"</font><sub>[{speaker}-{name}]</sub>"
    last_paragraph = None
    for index, token in enumerate(book.tokens):
        if token.paragraph_id != last_paragraph:
            out.write("<p />")
        out.write(f"{before[index]}{escape(token.text)}{after[index]} ")
        last_paragraph = token.paragraph_id


_WRITERS = {
    "supersense": _supersense, "tokens": _tokens, "book": _book,
    "entities": _entities, "quotes": _quotes, "book.html": _html,
}
