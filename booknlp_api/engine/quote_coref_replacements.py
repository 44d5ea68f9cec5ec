"""Installs the speaker-attribution and coref replacements on a component instance when it is built.

Only the instances change (attributes shadowing upstream's methods); upstream's modules and classes
stay as they are, so upstream remains callable unchanged (equivalence tests, the reference runner).
"""

from __future__ import annotations

from typing import Any

from booknlp_api.engine.coref_get_data import CorefData
from booknlp_api.engine.litbank_coref import make_test
from booknlp_api.engine.speaker_get_batches import SpeakerBatches
from booknlp_api.engine.wordpiece_tokenize import remember_tokenize
from booknlp_api.models.bert import import_upstream


def install_quote_coref(component: str, built: Any, aliases: str) -> None:
    """``built`` is a ``QuotationAttribution`` (quote) or ``LitBankCoref`` (coref); others are left alone."""
    if component == "quote":
        remember_tokenize(built.model.tokenizer)
        built.model.get_batches = SpeakerBatches(built.model)
    elif component == "coref":
        remember_tokenize(built.model.tokenizer)
        built.model.get_data = CorefData(built.model)
        built.test = make_test(built, import_upstream("booknlp.english.name_coref").NameCoref(aliases))
