"""Turn the native files BookNLP writes into a folder into the typed result of ``result_schema``.

Which files exist depends on the pipeline (upstream ``EnglishBookNLP.process``): ``.tokens`` whenever
the tagger runs (entity, supersense or event), ``.supersense`` with supersense, ``.entities`` with
entity, ``.quotes`` with quote, ``.book`` with coref. Events have no file of their own: they are the
last column of ``.tokens``, which reads ``O`` everywhere when the event pipe did not run, so whether
events exist is a question for the pipeline, not the files (see ``sections_produced``).

The files are tab-separated with one header line and parsed with plain string splitting: a novel has
~190K tokens and ~50K supersense rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from booknlp_api.engine.result_schema import (
    SECTIONS,
    AnalysisResult,
    Character,
    CharacterWord,
    Entity,
    Event,
    Gender,
    Mention,
    NameCount,
    Quote,
    Section,
    Supersense,
    Token,
)

_PRODUCERS: dict[Section, frozenset[str]] = {
    "tokens": frozenset({"entity", "supersense", "event"}),
    "entities": frozenset({"entity"}),
    "quotes": frozenset({"quote"}),
    "supersenses": frozenset({"supersense"}),
    "events": frozenset({"event"}),
    "characters": frozenset({"coref"}),
}

_Row = TypeVar("_Row")


class NativeFormatError(ValueError):
    """A native file that does not have the layout BookNLP 1.0.8 writes."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path.name}, line {line}: {problem}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class NativeSections:
    """The sections read from one folder; None where the file is missing or the section was not asked for."""

    tokens: list[Token] | None = None
    entities: list[Entity] | None = None
    quotes: list[Quote] | None = None
    supersenses: list[Supersense] | None = None
    events: list[Event] | None = None
    characters: list[Character] | None = None


def sections_produced(pipeline: Iterable[str]) -> tuple[Section, ...]:
    """The sections a run of these upstream pipes produces, in ``SECTIONS`` order."""
    pipes = set(pipeline)
    return tuple(section for section in SECTIONS if _PRODUCERS[section] & pipes)


def read_native(folder: Path, book_id: str, *, sections: Iterable[str] | None = None) -> NativeSections:
    """Parse the requested sections (all when None) from whichever native files exist in ``folder``.

    Sections not requested are never read. Quotes also read ``.book`` (when present) to name speakers.
    Events are read from ``.tokens`` whether or not the event pipe ran; ask for them only if it did.
    """
    wanted = _checked(sections)

    def native(suffix: str) -> Path:
        return Path(folder) / f"{book_id}.{suffix}"

    token_rows = _table(native("tokens"), 13) if {"tokens", "events"} & wanted else None
    characters = _characters(native("book")) if {"characters", "quotes"} & wanted else None
    return NativeSections(
        tokens=_converted(native("tokens"), token_rows, _token) if "tokens" in wanted else None,
        entities=_parsed(native("entities"), 6, _entity) if "entities" in wanted else None,
        quotes=_quotes(native("quotes"), characters) if "quotes" in wanted else None,
        supersenses=_parsed(native("supersense"), 4, _supersense) if "supersenses" in wanted else None,
        events=_converted(native("tokens"), token_rows, _event) if "events" in wanted else None,
        characters=characters if "characters" in wanted else None,
    )


def count_tokens(folder: Path, book_id: str) -> int | None:
    """Tokens in ``<book_id>.tokens`` without parsing it: one line per token after the header."""
    path = Path(folder) / f"{book_id}.tokens"
    if not path.is_file():
        return None
    return max(path.read_bytes().count(b"\n") - 1, 0)


def build_result(
    folder: Path,
    book_id: str,
    *,
    model: str,
    pipeline: Iterable[str],
    device: str,
    timings: Mapping[str, float],
    synthetic_models: bool,
    token_count: int | None = None,
    sections: Iterable[str] | None = None,
    precision: Literal["exact", "fast"] = "exact",
) -> AnalysisResult:
    """The full result of one run: requested sections (all when None) that the pipeline produced.

    ``token_count`` defaults to the number of lines in ``.tokens``.
    """
    pipes = list(pipeline)
    wanted = _checked(sections) & set(sections_produced(pipes))
    native = read_native(folder, book_id, sections=wanted)
    if token_count is None:
        token_count = len(native.tokens) if native.tokens is not None else count_tokens(folder, book_id)
    return AnalysisResult(
        book_id=book_id,
        model=model,
        pipeline=pipes,
        device=device,
        token_count=token_count,
        timings=dict(timings),
        synthetic_models=synthetic_models,
        precision=precision,
        **{section: getattr(native, section) for section in SECTIONS},
    )


def _checked(sections: Iterable[str] | None) -> set[str]:
    if sections is None:
        return set(SECTIONS)
    wanted = set(sections)
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return wanted


def _table(path: Path, columns: int) -> list[list[str]] | None:
    """Rows of a tab-separated native file without its header; None if the file does not exist.

    Only the last column may contain tabs. Lines end with "\\n" only, the one line ending BookNLP
    writes; ``str.splitlines`` would also break rows at form feeds or Unicode line separators.
    """
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").split("\n")[1:]
    if lines and not lines[-1]:
        lines.pop()
    rows = [line.split("\t", columns - 1) for line in lines]
    for number, row in enumerate(rows, start=2):
        if len(row) != columns:
            raise NativeFormatError(path, number, f"{len(row)} columns, expected {columns}")
    return rows


def _parsed(path: Path, columns: int, make: Callable[[list[str]], _Row]) -> list[_Row] | None:
    return _converted(path, _table(path, columns), make)


def _converted(path: Path, rows: list[list[str]] | None, make: Callable[[list[str]], _Row | None]) -> list[_Row] | None:
    """``make`` applied to every row, dropping the rows it turns into None."""
    if rows is None:
        return None
    items = []
    for number, row in enumerate(rows, start=2):
        try:
            item = make(row)
        except ValueError as error:  # includes pydantic's ValidationError
            raise NativeFormatError(path, number, str(error)) from error
        if item is not None:
            items.append(item)
    return items


def _token(row: list[str]) -> Token:
    return Token(
        paragraph=int(row[0]),
        sentence=int(row[1]),
        index_in_sentence=int(row[2]),
        index=int(row[3]),
        text=row[4],
        lemma=row[5],
        start_char=int(row[6]),
        end_char=int(row[7]),
        pos=row[8],
        fine_pos=row[9],
        dep=row[10],
        head=int(row[11]),
        event=_is_event(row[12]),
    )


def _event(row: list[str]) -> Event | None:
    if not _is_event(row[12]):
        return None
    return Event(token=int(row[3]), text=row[4], start_char=int(row[6]), end_char=int(row[7]))


def _is_event(flag: str) -> bool:
    if flag not in ("EVENT", "O"):
        raise ValueError(f"event column is {flag!r}, expected EVENT or O")
    return flag == "EVENT"


def _entity(row: list[str]) -> Entity:
    coref, start, end, prop, category, text = row
    return Entity(coref=int(coref), start_token=int(start), end_token=int(end), prop=prop, category=category, text=text)


def _supersense(row: list[str]) -> Supersense:
    start, end, category, text = row
    return Supersense(start_token=int(start), end_token=int(end), category=category, text=text)


def _quotes(path: Path, characters: list[Character] | None) -> list[Quote] | None:
    names = {character.id: character.name for character in characters or ()}

    def quote(row: list[str]) -> Quote:
        start, end, mention_start, mention_end, phrase, char_id, text = row
        speaker = None
        if mention_start != "None":
            speaker = Mention(start_token=int(mention_start), end_token=int(mention_end), text=phrase)
        speaker_id = None if char_id == "None" else int(char_id)
        name = names.get(speaker_id) if speaker_id is not None else None
        return Quote(
            start_token=int(start),
            end_token=int(end),
            text=text,
            speaker=speaker,
            speaker_id=speaker_id,
            speaker_name=name or (speaker.text if speaker else None),
        )

    return _parsed(path, 7, quote)


def _characters(path: Path) -> list[Character] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("characters"), list):
        raise NativeFormatError(path, 1, 'expected a JSON object with a "characters" list')
    try:
        return [_character(raw) for raw in data["characters"]]
    except (KeyError, TypeError, ValueError) as error:
        raise NativeFormatError(path, 1, f"malformed character: {error!r}") from error


def _character(raw: dict[str, Any]) -> Character:
    mentions = raw["mentions"]
    return Character(
        id=raw["id"],
        name=_canonical_name(mentions),
        mention_count=raw["count"],
        names=_name_counts(mentions["proper"]),
        common_names=_name_counts(mentions["common"]),
        pronouns=_name_counts(mentions["pronoun"]),
        gender=_gender(raw.get("g")),
        agent_verbs=_words(raw["agent"]),
        patient_verbs=_words(raw["patient"]),
        possessions=_words(raw["poss"]),
        modifiers=_words(raw["mod"]),
    )


def _canonical_name(mentions: dict[str, list[dict[str, Any]]]) -> str | None:
    for kind in ("proper", "common", "pronoun"):
        if mentions[kind]:
            # max() keeps the first of equal counts; upstream lists ties in order of first appearance.
            return max(mentions[kind], key=lambda mention: mention["c"])["n"]
    return None


def _name_counts(mentions: list[dict[str, Any]]) -> list[NameCount]:
    return [NameCount(name=mention["n"], count=mention["c"]) for mention in mentions]


def _words(words: list[dict[str, Any]]) -> list[CharacterWord]:
    return [CharacterWord(word=word["w"], token=word["i"]) for word in words]


def _gender(raw: dict[str, Any] | None) -> Gender | None:
    if raw is None:
        return None
    return Gender(
        inferred=raw.get("argmax"),
        confidence=raw.get("max", 0.0),
        scores=raw["inference"],
        evidence=raw.get("total", 0.0),
    )
