"""``CorefForward`` links mentions exactly as upstream's ``BERTCorefTagger.forward``, on generated books.

Both sides run on a copy of the tiny coref model with its scorer perturbed (seeded) so that links, new
entities, compatibility refusals and ties all happen; the mention representations come from a stand-in
for the BERT pass (the same random tensors for both), so only the linking is compared.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booknlp_api.engine.coref_forward import MAX_PREVIOUS_MENTIONS, CorefForward, row_counts_independent
from booknlp_api.engine.service import NLPService
from booknlp_api.models.bert import import_upstream

Entity = import_upstream("booknlp.common.pipelines").Entity
upstream_forward = import_upstream("booknlp.english.bert_coref_quote_pronouns").BERTCorefTagger.forward
WORDS = ("he", "she", "I", "me", "my", "it", "they", "her", "Emma", "the man", "him")


@pytest.fixture(scope="module")
def coref(tiny_service: NLPService) -> Any:
    model = copy.deepcopy(tiny_service.load("tiny", "entity,quote,coref").coref.model)
    model.eval()
    return model


@st.composite
def books(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(2, 3 * MAX_PREVIOUS_MENTIONS))
    entities, position = [], 0
    for i in range(count):
        position += draw(st.integers(0, 3))
        entity = Entity(0, 0, proper=draw(st.sampled_from(["PRON", "PRON", "PROP", "NOM"])),
                        ner_cat=draw(st.sampled_from(["PER", "PER", "LOC"])), in_quote=draw(st.booleans()),
                        text=draw(st.sampled_from(WORDS)))
        entity.global_start = position
        entity.global_end = position + draw(st.integers(0, 2))  # overlaps make nested mentions
        outside = [j for j in range(count) if j != i]
        if entity.in_quote and draw(st.booleans()):
            entity.quote_mention = draw(st.sampled_from(outside))
        entities.append(entity)
    # name coref's ids: most pronouns unresolved (-1), some mentions already in a cluster
    existing = [draw(st.sampled_from([-1, -1, -1, 0, 1, 2, 5])) for _ in range(count)]
    cuts = sorted(set(draw(st.lists(st.integers(1, count - 1), max_size=3))))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, count], strict=True)]
    genders = {eid: {"argmax": draw(st.sampled_from(["he/him/his", "she/her", "they/them/their"]))}
               for eid in draw(st.lists(st.integers(0, 5), max_size=3))}
    return {"entities": entities, "existing": existing, "sizes": sizes, "genders": genders,
            "seed": draw(st.integers(0, 2**31 - 1)), "scale": draw(st.sampled_from([0.0, 0.3, 1.0, 3.0]))}


def _reps(model: Any, book: dict[str, Any]) -> tuple[list[torch.Tensor], Any]:
    generator = torch.Generator().manual_seed(book["seed"])
    width = model.unary1.in_features
    reps = [torch.randn(size, width, generator=generator) for size in book["sizes"]]
    starts = [torch.zeros(size, dtype=torch.long) for size in book["sizes"]]
    by_batch = {id(s): r for s, r in zip(starts, reps, strict=True)}

    def get_mention_reps(**kwargs: Any) -> torch.Tensor:
        return by_batch[id(kwargs["starts"])]

    return starts, get_mention_reps


def _perturb(model: Any, seed: int, scale: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.mention_mention1, model.mention_mention2, model.mention_mention3, model.unary3):
            layer.weight.add_(torch.randn(layer.weight.shape, generator=generator) * scale / layer.in_features ** 0.5)
            layer.bias.add_(torch.randn(layer.bias.shape, generator=generator) * scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books())
def test_links_are_upstreams(coref: Any, book: dict[str, Any]) -> None:
    _perturb(coref, book["seed"], book["scale"])
    starts, get_mention_reps = _reps(coref, book)
    coref.get_mention_reps = get_mention_reps
    nothing = [None] * len(starts)
    args = dict(existing=book["existing"], starts=starts, ends=starts, widths=nothing, input_ids=nothing,
                attention_mask=nothing, transforms=nothing, entities=book["entities"], ref_genders=book["genders"])
    with torch.no_grad():
        theirs = upstream_forward(coref, nothing, nothing, **args)
        ours = CorefForward(coref, row_counts_independent(coref))(nothing, nothing, **args)
    assert ours == theirs


def test_row_counts_are_probed_on_this_machine(coref: Any) -> None:
    counts = row_counts_independent(coref)
    assert counts <= set(range(1, MAX_PREVIOUS_MENTIONS + 1))
    # a mention scored together must get its own call's bits: check one count the probe allows, directly
    for n in sorted(counts)[-1:]:
        rows = torch.randn(1024, coref.mention_mention1.in_features)
        with torch.inference_mode():
            assert torch.equal(coref.mention_mention1(rows[5:5 + n]), coref.mention_mention1(rows)[5:5 + n])
