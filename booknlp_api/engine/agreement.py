"""How far two analyses of the same text agree: fast mode against exact, or one device against another.

Each metric compares a *reference* run (exact mode, or upstream) with a *candidate* run and returns a
number from 0 to 1, 1 meaning the candidate decided exactly as the reference did. Both runs parse the
text with the same spaCy model, so token numbers line up and spans can be compared directly.
Two runs that both found nothing agree fully (1.0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from booknlp_api.engine.result import NativeSections, read_native

Span = tuple[int, int]


def f1(reference: Iterable[Hashable], candidate: Iterable[Hashable]) -> float:
    """F1 of two multisets (items counted as often as they occur); 1.0 when both are empty."""
    ref, cand = Counter(reference), Counter(candidate)
    if not ref and not cand:
        return 1.0
    matched = sum((ref & cand).values())
    return 2 * matched / (sum(ref.values()) + sum(cand.values()))


def speaker_accuracy(reference: Mapping[Span, Span | None], candidate: Mapping[Span, Span | None]) -> float:
    """Share of the reference's quotes (by span) whose speaker mention the candidate chose too.

    "No speaker" is a decision like any other; a quote the candidate lacks counts as wrong, and a quote
    only the candidate has counts against it as well (both runs find quotes with the same rules, so
    this only happens when something else is broken).
    """
    quotes = set(reference) | set(candidate)
    if not quotes:
        return 1.0
    same = sum(1 for q in quotes if q in reference and q in candidate and reference[q] == candidate[q])
    return same / len(quotes)


def b_cubed_f1(reference: Mapping[Span, int], candidate: Mapping[Span, int]) -> float:
    """B-cubed F1 of two clusterings of mentions (mention span -> cluster id).

    Computed over the union of mentions: a mention one side lacks is a singleton cluster there, so
    missing mentions lower the score instead of vanishing from it. Cluster ids need not match.
    """
    mentions = set(reference) | set(candidate)
    if not mentions:
        return 1.0
    ref_clusters = _clusters(reference, mentions)
    cand_clusters = _clusters(candidate, mentions)
    precision = recall = 0.0
    for mention in mentions:
        ref, cand = ref_clusters[mention], cand_clusters[mention]
        overlap = len(ref & cand)
        precision += overlap / len(cand)
        recall += overlap / len(ref)
    precision, recall = precision / len(mentions), recall / len(mentions)
    return 2 * precision * recall / (precision + recall)


def _clusters(assigned: Mapping[Span, int], mentions: set[Span]) -> dict[Span, frozenset[Span]]:
    members: dict[object, set[Span]] = {}
    for mention in mentions:
        key: object = ("cluster", assigned[mention]) if mention in assigned else ("alone", mention)
        members.setdefault(key, set()).add(mention)
    frozen = {key: frozenset(group) for key, group in members.items()}
    return {mention: frozen[("cluster", assigned[mention]) if mention in assigned else ("alone", mention)]
            for mention in mentions}


@dataclass(frozen=True)
class Agreement:
    """Every metric for one pair of runs; None where neither run produced that section."""

    entities_f1: float | None
    supersenses_f1: float | None
    events_f1: float | None
    quote_speakers: float | None
    coref_b_cubed_f1: float | None
    characters_f1: float | None

    def values(self) -> dict[str, float]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    def lowest(self) -> float:
        return min(self.values().values(), default=1.0)


def agreement(reference: NativeSections, candidate: NativeSections) -> Agreement:
    """Compare two runs' sections: entity spans and types, supersenses, events, quote speakers,
    coreference clusters (B-cubed over entity mentions) and the character list (canonical names)."""
    ref, cand = reference, candidate
    entities = None
    coref = None
    if ref.entities is not None or cand.entities is not None:
        ref_ents, cand_ents = ref.entities or [], cand.entities or []
        entities = f1(((e.start_token, e.end_token, e.category) for e in ref_ents),
                      ((e.start_token, e.end_token, e.category) for e in cand_ents))
        coref = b_cubed_f1({(e.start_token, e.end_token): e.coref for e in ref_ents},
                           {(e.start_token, e.end_token): e.coref for e in cand_ents})
    supersenses = None
    if ref.supersenses is not None or cand.supersenses is not None:
        supersenses = f1(((s.start_token, s.end_token, s.category) for s in ref.supersenses or []),
                         ((s.start_token, s.end_token, s.category) for s in cand.supersenses or []))
    events = None
    if ref.events is not None or cand.events is not None:
        events = f1((e.token for e in ref.events or []), (e.token for e in cand.events or []))
    speakers = None
    if ref.quotes is not None or cand.quotes is not None:
        speakers = speaker_accuracy(_speakers(ref), _speakers(cand))
    characters = None
    if ref.characters is not None or cand.characters is not None:
        characters = f1((c.name for c in ref.characters or []), (c.name for c in cand.characters or []))
    return Agreement(entities, supersenses, events, speakers, coref, characters)


def _speakers(sections: NativeSections) -> dict[Span, Span | None]:
    return {(q.start_token, q.end_token): None if q.speaker is None else (q.speaker.start_token, q.speaker.end_token)
            for q in sections.quotes or []}


def compare_folders(reference: Path, candidate: Path, book_id: str, *, events: bool = True) -> Agreement:
    """Agreement of the native files two runs wrote for ``book_id`` (events only if the event pipe ran)."""
    sections = ["entities", "quotes", "supersenses", "characters"] + (["events"] if events else [])
    return agreement(read_native(reference, book_id, sections=sections),
                     read_native(candidate, book_id, sections=sections))
