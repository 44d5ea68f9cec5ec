"""What each model size is made of: BookNLP's three files and the BERT base each one derives from.

BookNLP derives the Hugging Face base name from the model *file name* (``google_bert`` becomes
``google/bert``, the component prefix and ``-v…`` suffix are dropped), so file names are data here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMPONENTS = ("entity", "coref", "quote")
"""Upstream's pipeline names for the three neural components (quote = speaker attribution)."""

_PREFIX = {"entity": "entities_", "coref": "coref_", "quote": "speaker_"}


@dataclass(frozen=True)
class BertShape:
    layers: int
    hidden: int
    heads: int

    @property
    def stem(self) -> str:
        """``google_bert_uncased_L-4_H-256_A-4``: the spelling used inside BookNLP file names."""
        return f"google_bert_uncased_L-{self.layers}_H-{self.hidden}_A-{self.heads}"

    @property
    def hub_name(self) -> str:
        return self.stem.replace("google_bert", "google/bert", 1)


@dataclass(frozen=True)
class ModelSpec:
    size: str
    shapes: dict[str, BertShape]
    versions: dict[str, str]
    synthetic_only: bool = False

    def file_name(self, component: str) -> str:
        return f"{_PREFIX[component]}{self.shapes[component].stem}-{self.versions[component]}.model"


_RELEASED_VERSIONS = {"entity": "v1.0", "coref": "v1.0", "quote": "v1.0.1"}

SPECS: dict[str, ModelSpec] = {
    "small": ModelSpec(
        "small",
        {"entity": BertShape(4, 256, 4), "coref": BertShape(2, 256, 4), "quote": BertShape(8, 256, 4)},
        _RELEASED_VERSIONS,
    ),
    "big": ModelSpec(
        "big",
        {"entity": BertShape(6, 768, 12), "coref": BertShape(12, 768, 12), "quote": BertShape(12, 768, 12)},
        _RELEASED_VERSIONS,
    ),
    # A very small architecture for the test suite; never published upstream.
    "tiny": ModelSpec(
        "tiny",
        {"entity": BertShape(2, 64, 2), "coref": BertShape(2, 64, 2), "quote": BertShape(2, 64, 2)},
        _RELEASED_VERSIONS,
        synthetic_only=True,
    ),
}

DOWNLOADABLE = tuple(size for size, spec in SPECS.items() if not spec.synthetic_only)

_STEM = re.compile(r"google_bert_uncased_L-(\d+)_H-(\d+)_A-(\d+)")


def shape_from_file_name(name: str) -> BertShape:
    """The BERT shape encoded in a BookNLP model file name, as upstream parses it."""
    match = _STEM.search(name)
    if match is None:
        raise ValueError(f"{name!r} does not follow BookNLP's naming pattern (…google_bert_uncased_L-N_H-N_A-N…)")
    return BertShape(*(int(group) for group in match.groups()))
