"""The typed result, read from BookNLP's real published Emma output and from a small hand-checked excerpt."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from booknlp_api.engine.result import (
    NativeFormatError,
    NativeSections,
    build_result,
    count_tokens,
    read_native,
    sections_produced,
)
from booknlp_api.engine.result_schema import SECTIONS, AnalysisResult, Event, Mention, NameCount, Token

EMMA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "booknlp_emma_reference"
EXCERPT = Path(__file__).resolve().parent / "fixtures" / "native"
FULL_PIPELINE = ["entity", "quote", "supersense", "event", "coref"]


@pytest.fixture(scope="module")
def emma() -> NativeSections:
    return read_native(EMMA, "158_emma")


@pytest.fixture(scope="module")
def excerpt() -> NativeSections:
    return read_native(EXCERPT, "emma_excerpt")


@pytest.fixture
def excerpt_copy(tmp_path: Path) -> Path:
    for path in EXCERPT.glob("emma_excerpt.*"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


# --- BookNLP's real output for Emma (no .tokens file published) ---


def test_emma_has_no_tokens_or_events_without_a_tokens_file(emma: NativeSections) -> None:
    assert emma.tokens is None
    assert emma.events is None
    assert count_tokens(EMMA, "158_emma") is None


def test_emma_main_characters_have_names_counts_and_genders(emma: NativeSections) -> None:
    assert emma.characters is not None
    assert len(emma.characters) == 989
    by_id = {character.id: character for character in emma.characters}
    heroine = by_id[123]
    assert emma.characters[0] is heroine  # upstream lists the most mentioned first
    assert (heroine.name, heroine.mention_count) == ("Emma", 4405)
    assert heroine.names[:2] == [NameCount(name="Emma", count=799), NameCount(name="dear Emma", count=6)]
    assert heroine.pronouns[0] == NameCount(name="her", count=800)
    assert heroine.gender is not None
    assert (heroine.gender.inferred, heroine.gender.confidence) == ("she/her", 0.83)
    assert heroine.gender.scores["he/him/his"] == 0.083
    assert heroine.gender.evidence == 100381.966
    assert (heroine.possessions[0].word, heroine.possessions[0].token) == ("sister", 76)
    assert (heroine.agent_verbs[0].word, heroine.agent_verbs[0].token) == ("have", 101)
    assert (heroine.modifiers[0].word, heroine.modifiers[0].token) == ("youngest", 56)
    assert by_id[111].name == "Harriet"
    assert by_id[111].gender is not None and by_id[111].gender.inferred == "she/her"
    assert by_id[92].name == "Mr. Knightley"
    assert by_id[92].gender is not None and by_id[92].gender.inferred == "he/him/his"
    assert sum(character.gender is None for character in emma.characters) == 319


def test_canonical_name_falls_back_to_common_noun_then_pronoun(emma: NativeSections) -> None:
    assert emma.characters is not None
    by_id = {character.id: character for character in emma.characters}
    father = by_id[425]  # Mr. Woodhouse is never named in his own cluster
    assert father.names == []
    assert father.name == "her father"
    pronouns_only = by_id[1770]
    assert pronouns_only.names == [] and pronouns_only.common_names == []
    assert pronouns_only.name == "I"
    # equal counts: the first listed (first seen in the text) wins
    assert by_id[216].names[:2] == [
        NameCount(name="Mr. Cox", count=2),
        NameCount(name="Mr. William Cox", count=2),
    ]
    assert by_id[216].name == "Mr. Cox"


def test_emma_quotes_carry_speaker_mention_id_and_character_name(emma: NativeSections) -> None:
    assert emma.quotes is not None
    assert len(emma.quotes) == 2106
    first = emma.quotes[0]
    assert (first.start_token, first.end_token) == (1272, 1295)
    assert first.text.startswith("“ Poor Miss Taylor!--I wish she were here again .")
    assert first.speaker == Mention(start_token=1266, end_token=1266, text="he")
    assert (first.speaker_id, first.speaker_name) == (425, "her father")
    speakers = Counter(quote.speaker_name for quote in emma.quotes if quote.speaker_id == 123)
    assert speakers == Counter({"Emma": 593})
    # the word None inside a quotation is text, not a missing speaker
    none_quote = next(quote for quote in emma.quotes if quote.text.startswith("“ None ;"))
    assert (none_quote.speaker_id, none_quote.speaker_name) == (88, "Mrs. Weston")


def test_quote_speaker_outside_characters_is_named_by_its_mention(emma: NativeSections) -> None:
    assert emma.quotes is not None and emma.characters is not None
    character_ids = {character.id for character in emma.characters}
    outside = [quote for quote in emma.quotes if quote.speaker_id not in character_ids]
    assert len(outside) == 23
    assert all(quote.speaker is not None and quote.speaker_name == quote.speaker.text for quote in outside)


def test_emma_entities_and_supersenses(emma: NativeSections) -> None:
    assert emma.entities is not None and emma.supersenses is not None
    assert len(emma.entities) == 27291
    first = emma.entities[0]
    assert (first.coref, first.start_token, first.end_token) == (123, 4, 5)
    assert (first.prop, first.category, first.text) == ("PROP", "PER", "Emma Woodhouse")
    kinds = Counter((entity.prop, entity.category) for entity in emma.entities)
    assert kinds[("PROP", "GPE")] == 486
    assert kinds[("PRON", "PER")] == 17373
    assert kinds[("NOM", "VEH")] == 63
    assert len(emma.supersenses) == 49530
    assert emma.supersenses[0].model_dump() == {
        "start_token": 2,
        "end_token": 2,
        "category": "noun.communication",
        "text": "CHAPTER",
    }
    assert Counter(sense.category for sense in emma.supersenses)["noun.person"] == 7801


def test_emma_result_serialises_numbers_as_json_integers() -> None:
    result = build_result(
        EMMA,
        "158_emma",
        model="big",
        pipeline=FULL_PIPELINE,
        device="cpu",
        timings={"coref": 35.8},
        synthetic_models=False,
        sections=["entities", "quotes", "characters"],
    )
    data = json.loads(result.model_dump_json())
    assert data["token_count"] is None
    assert data["tokens"] is None and data["supersenses"] is None
    assert data["entities"][0] == {
        "coref": 123,
        "start_token": 4,
        "end_token": 5,
        "prop": "PROP",
        "category": "PER",
        "text": "Emma Woodhouse",
    }
    assert type(data["quotes"][0]["speaker_id"]) is int
    assert type(data["characters"][0]["mention_count"]) is int


# --- the hand-checked excerpt: tokens, events, a quote without a speaker ---


def test_tokens_are_parsed_with_character_offsets(excerpt: NativeSections) -> None:
    assert excerpt.tokens is not None
    assert len(excerpt.tokens) == 32
    assert excerpt.tokens[1] == Token(
        paragraph=0,
        sentence=0,
        index_in_sentence=1,
        index=1,
        text="smiled",
        lemma="smile",
        start_char=5,
        end_char=11,
        pos="VERB",
        fine_pos="VBD",
        dep="ROOT",
        head=1,
        event=True,
    )
    text = (EXCERPT / "emma_excerpt.txt").read_text(encoding="utf-8")
    # the curly quotation marks are three bytes each: these offsets only match as characters
    assert all(text[token.start_char : token.end_char] == token.text for token in excerpt.tokens)
    assert [token.paragraph for token in excerpt.tokens[9:12]] == [0, 1, 1]
    assert [token.index for token in excerpt.tokens] == list(range(32))


def test_events_come_from_the_tokens_event_column(excerpt: NativeSections) -> None:
    assert excerpt.events == [
        Event(token=1, text="smiled", start_char=5, end_char=11),
        Event(token=3, text="chatted", start_char=16, end_char=23),
        Event(token=14, text="wish", start_char=75, end_char=79),
        Event(token=25, text="agree", start_char=113, end_char=118),
    ]
    assert excerpt.tokens is not None
    assert [token.index for token in excerpt.tokens if token.event] == [1, 3, 14, 25]


def test_quote_without_speaker_has_none_everywhere(excerpt: NativeSections) -> None:
    assert excerpt.quotes is not None
    unattributed, attributed = excerpt.quotes
    assert (unattributed.speaker, unattributed.speaker_id, unattributed.speaker_name) == (None, None, None)
    assert unattributed.text == "“ Poor Miss Taylor!--I wish she were here again . ”"
    assert attributed.speaker == Mention(start_token=0, end_token=0, text="Emma")
    assert (attributed.speaker_id, attributed.speaker_name) == (0, "Emma")


def test_excerpt_characters_genders(excerpt: NativeSections) -> None:
    assert excerpt.characters is not None
    emma, taylor, papa = excerpt.characters
    assert taylor.gender is not None
    assert taylor.gender.scores == {
        "he/him/his": 0.0,
        "she/her": 1.0,
        "they/them/their": 0.0,
        "xe/xem/xyr/xir": 0.0,
        "ze/zem/zir/hir": 0.0,
    }
    assert all(type(score) is float for score in taylor.gender.scores.values())
    assert (papa.name, papa.gender, papa.common_names) == ("papa", None, [NameCount(name="papa", count=1)])
    assert [(word.word, word.token) for word in emma.agent_verbs] == [
        ("smiled", 1),
        ("chatted", 3),
        ("agree", 25),
    ]


def test_a_proper_name_outranks_more_frequent_common_nouns(excerpt_copy: Path) -> None:
    # BookNLP's Emma has no cluster holding both kinds, but coref can merge them
    mentions = {
        "proper": [{"c": 1, "n": "papa"}],
        "common": [{"c": 3, "n": "her father"}],
        "pronoun": [{"c": 9, "n": "he"}],
    }
    father = {"id": 2, "g": None, "count": 13, "mentions": mentions, "agent": [], "patient": [], "mod": [], "poss": []}
    (excerpt_copy / "emma_excerpt.book").write_text(json.dumps({"characters": [father]}), encoding="utf-8")
    native = read_native(excerpt_copy, "emma_excerpt", sections=["characters"])
    assert native.characters is not None
    assert native.characters[0].name == "papa"


def test_speaker_is_named_by_its_mention_without_a_book_file(excerpt_copy: Path) -> None:
    (excerpt_copy / "emma_excerpt.quotes").write_text(
        "quote_start\tquote_end\tmention_start\tmention_end\tmention_phrase\tchar_id\tquote\n"
        "21\t31\t7\t7\tshe\t0\t“ I can not agree with you , papa . ”\n",
        encoding="utf-8",
    )
    (excerpt_copy / "emma_excerpt.book").unlink()
    native = read_native(excerpt_copy, "emma_excerpt", sections=["quotes", "characters"])
    assert native.characters is None
    assert native.quotes is not None
    assert (native.quotes[0].speaker_id, native.quotes[0].speaker_name) == (0, "she")


# --- section selection, missing files, malformed files ---


def test_sections_not_requested_are_not_parsed(excerpt_copy: Path) -> None:
    (excerpt_copy / "emma_excerpt.entities").write_text("COREF\tstart_token\nnot an entity\n", encoding="utf-8")
    (excerpt_copy / "emma_excerpt.book").write_text("{not json", encoding="utf-8")
    native = read_native(excerpt_copy, "emma_excerpt", sections=["tokens", "supersenses"])
    assert native.tokens is not None and native.supersenses is not None
    assert (native.entities, native.quotes, native.events, native.characters) == (None, None, None, None)
    with pytest.raises(NativeFormatError, match=r"emma_excerpt\.entities, line 2"):
        read_native(excerpt_copy, "emma_excerpt", sections=["entities"])


def test_missing_files_give_none(tmp_path: Path) -> None:
    shutil.copy(EXCERPT / "emma_excerpt.tokens", tmp_path)
    native = read_native(tmp_path, "emma_excerpt")
    assert native.tokens is not None and native.events is not None
    assert (native.entities, native.quotes, native.supersenses, native.characters) == (None, None, None, None)
    assert read_native(tmp_path, "other_book") == NativeSections()


def test_malformed_rows_name_the_file_and_line(excerpt_copy: Path) -> None:
    path = excerpt_copy / "emma_excerpt.tokens"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3].replace("\tO", "\tMAYBE")
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(NativeFormatError, match=r"emma_excerpt\.tokens, line 4: .*MAYBE"):
        read_native(excerpt_copy, "emma_excerpt", sections=["events"])
    supersense = excerpt_copy / "emma_excerpt.supersense"
    supersense.write_text(supersense.read_text(encoding="utf-8") + "x\t1\tnoun.person\tpapa\n", encoding="utf-8")
    with pytest.raises(NativeFormatError, match=r"emma_excerpt\.supersense, line 8"):
        read_native(excerpt_copy, "emma_excerpt", sections=["supersenses"])


def test_unknown_section_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown section"):
        read_native(EXCERPT, "emma_excerpt", sections=["tokens", "coref"])


# --- the envelope ---


def test_sections_follow_the_pipeline() -> None:
    assert sections_produced(FULL_PIPELINE) == SECTIONS
    assert sections_produced(["entity"]) == ("tokens", "entities")
    assert sections_produced(["entity", "quote"]) == ("tokens", "entities", "quotes")
    assert sections_produced(["entity", "event"]) == ("tokens", "entities", "events")


def excerpt_result(**options: Any) -> AnalysisResult:
    defaults = {"model": "small", "pipeline": FULL_PIPELINE, "device": "cpu", "timings": {}}
    return build_result(EXCERPT, "emma_excerpt", **{**defaults, "synthetic_models": False, **options})


def test_build_result_leaves_out_what_the_pipeline_did_not_produce() -> None:
    # the fixture's .tokens has EVENT flags, but a run without the event pipe has no events
    pipeline = ["entity", "quote", "supersense", "coref"]
    timings = {"spacy": 0.5, "tagger": 1.25}
    result = excerpt_result(pipeline=pipeline, timings=timings, synthetic_models=True)
    assert result.events is None
    assert result.tokens is not None and len(result.tokens) == 32
    assert result.token_count == 32
    assert result.quotes is not None and result.characters is not None and result.supersenses is not None
    assert (result.model, result.pipeline, result.device) == ("small", pipeline, "cpu")
    assert result.timings == timings
    assert result.synthetic_models is True


def test_build_result_reads_only_requested_sections_and_counts_tokens_anyway() -> None:
    result = excerpt_result(device="cuda:0", sections=["events"])
    assert result.device == "cuda:0"
    assert result.events is not None and len(result.events) == 4
    assert all(getattr(result, section) is None for section in SECTIONS if section != "events")
    assert result.token_count == count_tokens(EXCERPT, "emma_excerpt") == 32
    given = excerpt_result(token_count=40, sections=[])
    assert given.token_count == 40
    assert all(getattr(given, section) is None for section in SECTIONS)
