"""The typed analysis result: one model per kind of row in BookNLP's native files, plus the envelope.

These models are the HTTP API's response schema. Token numbers (``start_token``, ``end_token``,
``index``, ``head``, ``token``) all count tokens in the whole document from 0, as BookNLP does; spans
are inclusive at both ends. Character offsets count Unicode characters in the submitted text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from booknlp_api.vocabulary import SECTIONS as SECTIONS  # re-exported: defined in the light vocabulary module
from booknlp_api.vocabulary import Section as Section

MentionKind = Literal["PROP", "NOM", "PRON"]
EntityCategory = Literal["PER", "LOC", "FAC", "GPE", "VEH", "ORG"]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class Token(_Row):
    """One word of the spaCy parse (whitespace is not a token)."""

    paragraph: int = Field(description="Paragraph number from 0; a blank line starts a new paragraph.")
    sentence: int = Field(description="Sentence number in the document, from 0.")
    index_in_sentence: int = Field(description="Position of the token in its sentence, from 0.")
    index: int = Field(description="Token number in the document, from 0; spans elsewhere refer to it.")
    text: str = Field(
        description="The word as BookNLP writes it: any space, tab or line break inside it becomes S, T or N."
    )
    lemma: str
    start_char: int = Field(description="Character offset of the token's first character in the text.")
    end_char: int = Field(description="Character offset just past the token's last character.")
    pos: str = Field(description="Universal POS tag (spaCy `pos_`).", examples=["VERB"])
    fine_pos: str = Field(description="Penn Treebank tag (spaCy `tag_`).", examples=["VBD"])
    dep: str = Field(description="Dependency relation to the head.", examples=["nsubj"])
    head: int = Field(description="Document token number of the syntactic head; the token itself if root.")
    event: bool = Field(description="Whether the event tagger marked this token as a realis event.")


class Entity(_Row):
    """A mention of a person, place, organisation, facility, vehicle or geo-political entity."""

    coref: int = Field(description="Coreference cluster: mentions with the same number refer to one entity.")
    start_token: int
    end_token: int
    prop: MentionKind = Field(description="PROP: proper name, NOM: common noun phrase, PRON: pronoun.")
    category: EntityCategory = Field(description="ACE entity category.")
    text: str = Field(examples=["Emma Woodhouse"])


class Mention(_Row):
    """An entity mention by span and surface text."""

    start_token: int
    end_token: int
    text: str


class Quote(_Row):
    """A quotation and, when attribution found one, the mention of its speaker."""

    start_token: int = Field(description="First token of the quotation, opening quotation mark included.")
    end_token: int
    text: str = Field(description="The quotation's tokens joined by single spaces.")
    speaker: Mention | None = Field(description="The mention attribution chose as speaker; null if none.")
    speaker_id: int | None = Field(
        description="Coreference cluster of the speaker (matches `Entity.coref` and `Character.id`)."
    )
    speaker_name: str | None = Field(
        description=(
            "The speaker character's canonical name; when the cluster is not among `characters` (a person "
            "mentioned only once, or no coref stage), the speaker mention's own text."
        ),
        examples=["Emma"],
    )


class Supersense(_Row):
    """A WordNet supersense tag on a noun or verb span."""

    start_token: int
    end_token: int
    category: str = Field(description="WordNet lexicographer class.", examples=["noun.person", "verb.motion"])
    text: str


class Event(_Row):
    """A token the event tagger marked as an event that really happened (realis)."""

    token: int = Field(description="Document token number.")
    text: str
    start_char: int
    end_char: int


class NameCount(_Row):
    name: str
    count: int = Field(description="How many mentions use exactly this text.")


class CharacterWord(_Row):
    """A word syntactically linked to a character, by its token number."""

    word: str
    token: int


class Gender(_Row):
    """BookNLP's inferred referential gender, as pronoun sets with probabilities."""

    inferred: str | None = Field(
        description="The most probable pronoun set; null when no evidence was found.", examples=["she/her"]
    )
    confidence: float = Field(description="Probability of `inferred` (0 to 1).")
    scores: dict[str, float] = Field(
        description="Probability of each pronoun set.",
        examples=[{"he/him/his": 0.083, "she/her": 0.83, "they/them/their": 0.087}],
    )
    evidence: float = Field(description="Total weight of evidence behind the scores (BookNLP's `total`).")


class Character(_Row):
    """A person-entity cluster mentioned at least twice (BookNLP's `.book` file)."""

    id: int = Field(description="Coreference cluster number (matches `Entity.coref`).")
    name: str | None = Field(
        description=(
            "Canonical name: the most frequent proper name, else the most frequent common noun phrase, "
            "else the most frequent pronoun (ties go to the earliest in the text)."
        ),
        examples=["Emma"],
    )
    mention_count: int = Field(description="Number of mentions as a person, of every kind.")
    names: list[NameCount] = Field(description="Proper-name mentions, most frequent first.")
    common_names: list[NameCount] = Field(description="Common noun phrase mentions, most frequent first.")
    pronouns: list[NameCount] = Field(description="Pronoun mentions, most frequent first.")
    gender: Gender | None = Field(description="Inferred referential gender; null when none was inferred.")
    agent_verbs: list[CharacterWord] = Field(description="Verbs the character is the subject of, in text order.")
    patient_verbs: list[CharacterWord] = Field(
        description="Verbs the character is the direct object or passive subject of."
    )
    possessions: list[CharacterWord] = Field(description="Nouns the character possesses (`her house`).")
    modifiers: list[CharacterWord] = Field(
        description="Adjectives and nouns predicated of the character (`she was happy`)."
    )


class AnalysisResult(BaseModel):
    """One BookNLP analysis. A section is null when the pipeline did not produce it or nobody asked for it."""

    book_id: str
    model: str = Field(examples=["small"])
    pipeline: list[str] = Field(examples=[["entity", "quote", "supersense", "event", "coref"]])
    device: str = Field(examples=["cpu", "cuda:0"])
    token_count: int | None = Field(description="Tokens in the spaCy parse; null when unknown.")
    timings: dict[str, float] = Field(
        description="Seconds spent in each stage.", examples=[{"parse": 2.2, "tagger": 13.5, "attribution": 15.1}]
    )
    synthetic_models: bool = Field(
        description="True when the models carry random weights (testing only): the analysis is meaningless."
    )
    precision: Literal["exact", "fast"] = Field(
        "exact", description="exact: byte-identical to BookNLP's own output; fast: faster, may differ slightly.")
    tokens: list[Token] | None = None
    entities: list[Entity] | None = None
    quotes: list[Quote] | None = None
    supersenses: list[Supersense] | None = None
    events: list[Event] | None = None
    characters: list[Character] | None = None
