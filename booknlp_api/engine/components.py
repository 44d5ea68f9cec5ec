"""Upstream's neural components, built once from a model folder and placed on one device.

Upstream picks its device inside each constructor (and in two module-level globals) as "cuda if
available". We build every component on the CPU, then move it to the device this process chose,
so ``BOOKNLP_DEVICE=cpu`` is honoured on a GPU machine and ``cuda:N`` works at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from booknlp_api.engine.gender import load_priors
from booknlp_api.engine.precision import FastMode, Precision, make_fast
from booknlp_api.engine.replacements import install
from booknlp_api.models.bert import built_on_cpu, import_upstream, local_bert
from booknlp_api.models.manifest import ModelManifest

GENDER_CATS = [["he", "him", "his"], ["she", "her"], ["they", "them", "their"],
               ["xe", "xem", "xyr", "xir"], ["ze", "zem", "zir", "hir"]]
"""Upstream's default referential gender categories."""


def upstream_data(name: str) -> str:
    """Path of a data file shipped inside ``booknlp.english``."""
    return str(resources.files("booknlp.english").joinpath("data", name))


GENDER_PRIORS = upstream_data("gutenberg_prop_gender_terms.txt")


@dataclass
class Components:
    """What one model folder provides; a component is None until a pipeline needs it."""

    name: str
    manifest: ModelManifest
    folder: Path
    device: torch.device
    precision: Precision = "exact"
    fast_mode: FastMode | None = None
    """The fast options applied to each component; None in exact mode."""
    entity: Any = None
    names: Any = None
    quote: Any = None
    coref: Any = None
    load_seconds: dict[str, float] = field(default_factory=dict)

    def loaded(self) -> tuple[str, ...]:
        return tuple(c for c in ("entity", "quote", "coref") if getattr(self, c) is not None)

    def share(self, component: str, other: Components) -> None:
        """Use ``other``'s instance of ``component`` (already loaded there) instead of a copy of our own."""
        setattr(self, component, getattr(other, component))
        if component == "entity":
            self.names = other.names

    def load(self, component: str) -> None:
        if getattr(self, component) is not None:
            return
        built = build(component, self.folder, self.manifest.components[component])
        _move(component, built, self.device)
        install(component, built, upstream_data("aliases.txt"))
        if self.fast_mode is not None:
            make_fast(component, built, self.device, self.fast_mode)
        setattr(self, component, built)
        if component == "entity":
            self.names = import_upstream("booknlp.english.name_coref").NameCoref(upstream_data("aliases.txt"))
            install("names", self.names)
            load_priors(GENDER_PRIORS, GENDER_CATS)


def build(component: str, folder: Path, file_name: str, initialise: bool = False) -> Any:
    """Upstream's component from its model file, on the CPU.

    The file overwrites every weight, so by default nothing is randomly initialised first
    (``initialise=True`` builds it the way upstream does, for comparison).
    """
    with torch.no_grad(), local_bert(folder, initialise=initialise), built_on_cpu():
        return _BUILDERS[component](str(folder / file_name))


def _build_entity(path: str) -> Any:
    module = import_upstream("booknlp.english.entity_tagger")
    return module.LitBankEntityTagger(path, upstream_data("entity_cat.tagset"))


def _build_quote(path: str) -> Any:
    return import_upstream("booknlp.english.bert_qa").QuotationAttribution(path)


def _build_coref(path: str) -> Any:
    module = import_upstream("booknlp.english.litbank_coref")
    return module.LitBankCoref(path, GENDER_CATS, pronominalCorefOnly=True)


_BUILDERS = {"entity": _build_entity, "quote": _build_quote, "coref": _build_coref}


def _move(component: str, built: Any, device: torch.device) -> None:
    built.model.to(device)
    if component == "entity":
        tagger = built.model
        tagger.device = tagger.crf.device = tagger.supersense_crf.device = device
    elif component == "quote":
        import_upstream("booknlp.english.speaker_attribution").device = device
    else:
        import_upstream("booknlp.english.bert_coref_quote_pronouns").device = device
