"""Our byte-identical replacements for upstream hotspots, installed on a component instance when it is built.

Only the instance changes (attributes that shadow upstream's methods); upstream's modules and classes stay
as they are, so upstream remains callable unchanged (equivalence tests, the reference runner).
"""

from __future__ import annotations

from typing import Any

from booknlp_api.engine import coref_forward, coref_get_mention_reps, speaker_forward
from booknlp_api.engine.coref_get_data import CorefData
from booknlp_api.engine.entity_tag import make_tag
from booknlp_api.engine.litbank_coref import make_test
from booknlp_api.engine.name_cluster_merge import make_cluster
from booknlp_api.engine.speaker_get_batches import SpeakerBatches
from booknlp_api.engine.speaker_get_representation import SpeakerWindows
from booknlp_api.engine.tag_all import make_tag_all
from booknlp_api.engine.wordpiece_tokenize import remember_tokenize
from booknlp_api.models.bert import import_upstream


def install(component: str, built: Any, aliases: str | None = None) -> None:
    """``built`` is upstream's tagger (entity), ``NameCoref`` (names), ``QuotationAttribution`` (quote) or
    ``LitBankCoref`` (coref).

    ``aliases`` is upstream's aliases.txt, read once here for coref instead of on every book.
    """
    if component == "entity":
        built.model.tag_all = make_tag_all(built.model)
        built.tag = make_tag(built)
    elif component == "names":
        built.cluster = make_cluster(built)
    elif component == "quote":
        remember_tokenize(built.model.tokenizer)
        built.get_representation = SpeakerWindows(built)
        built.model.get_batches = SpeakerBatches(built.model)
        if speaker_forward.applies(built.model):
            built.model.forward = speaker_forward.SpeakerForward(built.model)
    elif component == "coref":
        remember_tokenize(built.model.tokenizer)
        built.model.get_data = CorefData(built.model)
        if coref_get_mention_reps.applies(built.model):
            built.model.get_mention_reps = coref_get_mention_reps.MentionReps(built.model)
        if coref_forward.applies(built.model):
            built.model.forward = coref_forward.CorefForward(built.model,
                                                             coref_forward.row_counts_independent(built.model))
        if aliases is not None:
            built.test = make_test(built, import_upstream("booknlp.english.name_coref").NameCoref(aliases))
