"""The agreement metrics of fast mode against exact mode, on hand-built inputs with known answers."""

from __future__ import annotations

import pytest

from booknlp_api.engine.agreement import agreement, b_cubed_f1, f1, speaker_accuracy
from booknlp_api.engine.result import NativeSections
from booknlp_api.engine.result_schema import Character, Entity, Event, Mention, Quote, Supersense


def test_f1_counts_matches_once_each_and_agrees_fully_on_nothing() -> None:
    assert f1([], []) == 1.0
    assert f1([(0, 1, "PER")], [(0, 1, "PER")]) == 1.0
    # 2 of 3 reference spans found, 1 wrong extra: P = 2/3, R = 2/3.
    assert f1([(0, 1, "PER"), (4, 4, "LOC"), (7, 8, "PER")],
              [(0, 1, "PER"), (4, 4, "LOC"), (7, 8, "GPE")]) == pytest.approx(2 / 3)
    # A duplicate in the candidate matches only once.
    assert f1(["a"], ["a", "a"]) == pytest.approx(2 / 3)
    assert f1(["a"], []) == 0.0


def test_speaker_accuracy_treats_no_speaker_as_a_decision_and_missing_quotes_as_wrong() -> None:
    reference = {(0, 5): (7, 7), (10, 12): None, (20, 30): (31, 31), (40, 41): (2, 2)}
    candidate = {(0, 5): (7, 7), (10, 12): None, (20, 30): (33, 33)}
    assert speaker_accuracy(reference, candidate) == pytest.approx(2 / 4)
    assert speaker_accuracy({}, {}) == 1.0
    assert speaker_accuracy({(0, 5): None}, {(0, 5): (1, 1)}) == 0.0


def test_b_cubed_ignores_cluster_numbers_and_scores_a_split_cluster() -> None:
    same = b_cubed_f1({(0, 0): 1, (5, 5): 1, (9, 9): 2}, {(0, 0): 7, (5, 5): 7, (9, 9): 3})
    assert same == 1.0
    # Reference: {a, b, c} one cluster. Candidate: {a, b}, {c}.
    # Precision: 1, 1, 1 -> 1. Recall: 2/3, 2/3, 1/3 -> 5/9. F1 = 2 * 5/9 / (1 + 5/9) = 10/14.
    split = b_cubed_f1({(0, 0): 1, (1, 1): 1, (2, 2): 1}, {(0, 0): 1, (1, 1): 1, (2, 2): 2})
    assert split == pytest.approx(10 / 14)
    # A mention only one side has is a singleton on the other: reference {a, b}, candidate {a} (b missing).
    # Precision: a 1, b 1 -> 1; recall: a 1/2, b 1/2 -> 1/2; F1 = 2/3.
    assert b_cubed_f1({(0, 0): 1, (1, 1): 1}, {(0, 0): 4}) == pytest.approx(2 / 3)
    assert b_cubed_f1({}, {}) == 1.0


def _entity(start: int, end: int, coref: int, category: str = "PER") -> Entity:
    return Entity(coref=coref, start_token=start, end_token=end, prop="PROP", category=category, text="x")


def _character(name: str) -> Character:
    return Character(id=0, name=name, mention_count=2, names=[], common_names=[], pronouns=[], gender=None,
                     agent_verbs=[], patient_verbs=[], possessions=[], modifiers=[])


def _quote(start: int, end: int, speaker: tuple[int, int] | None) -> Quote:
    mention = None if speaker is None else Mention(start_token=speaker[0], end_token=speaker[1], text="x")
    return Quote(start_token=start, end_token=end, text="x", speaker=mention, speaker_id=None, speaker_name=None)


def test_agreement_compares_every_section_and_skips_those_neither_run_produced() -> None:
    reference = NativeSections(
        entities=[_entity(0, 0, 1), _entity(3, 4, 1), _entity(9, 9, 2, "LOC")],
        quotes=[_quote(20, 25, (0, 0)), _quote(30, 31, None)],
        supersenses=[Supersense(start_token=1, end_token=1, category="verb.motion", text="x")],
        events=[Event(token=1, text="x", start_char=0, end_char=1)],
        characters=[_character("Emma"), _character("Harriet")],
    )
    assert agreement(reference, reference).values() == dict.fromkeys(
        ("entities_f1", "supersenses_f1", "events_f1", "quote_speakers", "coref_b_cubed_f1", "characters_f1"), 1.0)
    candidate = NativeSections(
        entities=[_entity(0, 0, 1), _entity(3, 4, 5), _entity(9, 9, 2, "GPE")],
        quotes=[_quote(20, 25, (3, 4)), _quote(30, 31, None)],
        supersenses=[],
        events=[Event(token=1, text="x", start_char=0, end_char=1), Event(token=2, text="y", start_char=2,
                                                                           end_char=3)],
        characters=[_character("Emma")],
    )
    found = agreement(reference, candidate)
    assert found.entities_f1 == pytest.approx(2 / 3)
    assert found.quote_speakers == 0.5
    assert found.supersenses_f1 == 0.0
    assert found.events_f1 == pytest.approx(2 / 3)
    assert found.characters_f1 == pytest.approx(2 / 3)
    # Reference {0,3} together, {9} alone; candidate splits them: P 1, R (1/2 + 1/2 + 1) / 3 = 2/3.
    assert found.coref_b_cubed_f1 == pytest.approx(0.8)
    assert found.lowest() == 0.0
    only_entities = agreement(NativeSections(entities=reference.entities), NativeSections(entities=[]))
    assert set(only_entities.values()) == {"entities_f1", "coref_b_cubed_f1"}
