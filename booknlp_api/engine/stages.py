"""BookNLP's stages, one function each, calling upstream's components in upstream's order.

Each stage reads what earlier stages put on the ``Book`` and adds its own part; ``STAGES`` says
which pipes make a stage run. The order and arguments mirror ``EnglishBookNLP.process()`` so the
native files come out byte-identical.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from booknlp_api.engine.components import GENDER_CATS, GENDER_PRIORS, Components
from booknlp_api.engine.gender import gender_model_class
from booknlp_api.engine.pipeline import Pipeline
from booknlp_api.engine.speaker_scores_forked import scores_shared
from booknlp_api.models.bert import import_upstream


@dataclass
class Book:
    """One text on its way through the stages."""

    text: str
    tokens: list[Any] = field(default_factory=list)
    entities: list[tuple[int, int, str, str]] = field(default_factory=list)
    supersenses: list[tuple[int, int, str, str]] | None = None
    quotes: list[tuple[int, int]] = field(default_factory=list)
    attributions: list[int | None] | None = None
    refs: list[int] | None = None
    genders: dict[int, Any] | None = None
    gender_model: Any = None
    assignments: list[int] | None = None
    characters: dict[str, Any] | None = None


@dataclass(frozen=True)
class Run:
    """How this run computes its stages (the precision's choices)."""

    parser: Any
    """What the parse stage calls ``tag(text)`` on: upstream's spaCy pipeline, or fast mode's split parse."""
    tag_processes: int = 1
    """Over how many processes the tagger shares its batches (``forked_batches.py``)."""
    quote_processes: int = 1
    """Over how many processes attribution shares its speaker batches (``speaker_scores_forked.py``)."""
    quote_by_length: bool = False
    """Whether attribution scores its quote windows in batches of similar length (``speaker_windows_by_length.py``)."""


def parse(book: Book, parts: Components, pipeline: Pipeline, run: Run) -> None:
    book.tokens = run.parser.tag(book.text)


def tag(book: Book, parts: Components, pipeline: Pipeline, run: Run) -> None:
    found = parts.entity.tag(book.tokens, doEvent="event" in pipeline, doEntities="entity" in pipeline,
                             doSS="supersense" in pipeline, processes=run.tag_processes)
    if "entity" in pipeline:
        book.entities = sorted(found["entities"])
    if "supersense" in pipeline:
        book.supersenses = found["supersense"]
    if "event" in pipeline:
        events = found.get("events", {})
        for token in book.tokens:
            if token.token_id in events:
                token.event = "EVENT"


def find_quotes(book: Book, parts: Components, pipeline: Pipeline, run: Run) -> None:
    book.quotes = import_upstream("booknlp.english.litbank_quote").QuoteTagger().tag(book.tokens)


def attribute(book: Book, parts: Components, pipeline: Pipeline, run: Run) -> None:
    with scores_shared(parts.quote.model, run.quote_processes, run.quote_by_length):
        book.attributions = parts.quote.tag(book.quotes, book.entities, book.tokens)


def cluster_names(book: Book, parts: Components, pipeline: Pipeline, run: Run) -> None:
    tokens, entities = book.tokens, book.entities
    in_quotes = [1 if tokens[start].inQuote or tokens[end].inQuote else 0 for start, end, _, _ in entities]
    refs = parts.names.cluster_narrator(entities, in_quotes, tokens)
    refs = parts.names.cluster_identical_propers(entities, refs)
    book.refs = parts.names.cluster_only_nouns(entities, refs, tokens)
    book.assignments = copy.deepcopy(book.refs)


def infer_gender(book: Book, parts: Components, pipeline: Pipeline, run: Run) -> None:
    book.gender_model = gender_model_class()(tokens=book.tokens, entities=book.entities, refs=book.refs,
                                        genders=GENDER_CATS,
                                        hyperparameterFile=GENDER_PRIORS)
    book.genders = book.gender_model.tag(book.entities, book.tokens, book.refs)


def resolve_coref(book: Book, parts: Components, pipeline: Pipeline, run: Run) -> None:
    book.assignments = parts.coref.tag(book.tokens, book.entities, book.refs, book.genders,
                                       book.attributions, book.quotes)
    book.genders = book.gender_model.update_gender_from_coref(book.genders, book.entities, book.assignments)
    english = import_upstream("booknlp.english.english_booknlp")
    # get_syntax never touches self; call it unbound rather than building a whole EnglishBookNLP.
    book.characters = english.EnglishBookNLP.get_syntax(None, book.tokens, book.entities, book.assignments,
                                                        book.genders)


StageRun = Callable[[Book, Components, Pipeline, Run], None]


@dataclass(frozen=True)
class Stage:
    name: str
    run: StageRun
    needs: frozenset[str]
    """Pipes of which at least one must be chosen for the stage to run (empty: always runs)."""

    def applies(self, pipeline: Pipeline) -> bool:
        return not self.needs or bool(self.needs & pipeline.pipes)


STAGES = (
    Stage("parse", parse, frozenset()),
    Stage("tagger", tag, frozenset({"entity", "supersense", "event"})),
    Stage("quotes", find_quotes, frozenset()),
    Stage("attribution", attribute, frozenset({"quote"})),
    Stage("names", cluster_names, frozenset({"entity"})),
    Stage("gender", infer_gender, frozenset({"entity"})),
    Stage("coref", resolve_coref, frozenset({"coref"})),
)
