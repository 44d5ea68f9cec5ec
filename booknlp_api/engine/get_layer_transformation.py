"""Table-driven replacements for the BIO steps inside upstream's ``Tagger.predict_all``: the tag "fix"
(``fix``/``supersense_fix``), ``get_layer_transformation``/``get_supersense_layer_transformation`` and the
re-insertion of tokens merged in earlier layers. Outputs are byte-identical to upstream's.

Upstream looks tag names up and splits strings for every token, and builds each merging matrix as
``n`` Python lists of ``n`` floats. Here a ``TagTable`` answers those questions per tag id once, and
every step is an array operation over a whole batch.

Why ``fix`` vectorizes: upstream scans back from an ``I-X`` tag through earlier (already fixed) tags,
keeping it when it reaches ``B-X`` through ``I-X`` tags only. Earlier tags are fixed before later ones and
fixing keeps a tag's label, so an ``I-X`` is kept exactly when the tag just before it has label ``X``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TagTable:
    """Per tag id (all CRF labels, upstream's two extra ones read as ``O``): what upstream's string tests say."""

    begins: npt.NDArray[np.bool_]
    """The tag name starts with ``B-``."""
    inside: npt.NDArray[np.bool_]
    """The tag name starts with ``I-``."""
    label: Ints
    """Index into ``names`` of the part after the ``-``; -1 for tags without one (``O``)."""
    to_begin: Ints
    """``B-X`` for an ``I-X`` tag (what ``fix`` turns it into); the tag itself otherwise."""
    to_inside: Ints
    """``I-X`` for a tag with label ``X``, else ``O``: the tag upstream inserts after it."""
    names: tuple[str, ...]

    @classmethod
    def build(cls, tagset: Mapping[str, int], rev_tagset: Mapping[int, str]) -> TagTable:
        size = max(rev_tagset) + 1
        names: list[str] = []
        begins, inside = np.zeros(size, bool), np.zeros(size, bool)
        label, to_begin, to_inside = (np.full(size, -1, np.int64), np.arange(size, dtype=np.int64),
                                      np.full(size, tagset["O"], np.int64))
        for tag, name in rev_tagset.items():
            begins[tag], inside[tag] = name.startswith("B-"), name.startswith("I-")
            parts = name.split("-")
            if len(parts) > 1:
                if parts[1] not in names:
                    names.append(parts[1])
                label[tag] = names.index(parts[1])
                to_inside[tag] = tagset[f"I-{parts[1]}"]
            if inside[tag]:
                to_begin[tag] = tagset[f"B-{parts[1]}"]
        return cls(begins, inside, label, to_begin, to_inside, tuple(names))


def fix(tags: Ints, table: TagTable) -> Ints:
    """Upstream's ``fix`` on every row of ``tags [batch, length]``: an ``I-X`` not continuing ``X`` becomes ``B-X``."""
    labels = table.label[tags]
    previous = np.full_like(labels, -1)
    previous[:, 1:] = labels[:, :-1]
    keep = ~table.inside[tags] | (previous == labels)
    return np.where(keep, tags, table.to_begin[tags])


@dataclass(frozen=True)
class LayerTransformation:
    """What upstream's ``get_layer_transformation`` returns, as arrays."""

    tags: Ints
    """Fixed tags ``[batch, length]``."""
    index: Floats
    """``[batch, length, length]``: row ``g`` averages the tokens merged into the next layer's token ``g``."""
    missing: list[Ints]
    """Per sentence, positions merged into the token before them (``I-`` tags past position 0)."""
    lens: list[int]
    """Per sentence, the next layer's length."""


def get_layer_transformation(tags: Ints, table: TagTable) -> LayerTransformation:
    fixed = fix(tags, table)
    batch, length = fixed.shape
    inside = table.inside[fixed]
    group = np.cumsum(~inside, axis=1) - 1
    rows = np.repeat(np.arange(batch), length)
    counts = np.zeros((batch, length), np.int64)
    np.add.at(counts, (rows, group.ravel()), 1)
    # upstream divides a row of ones by its float64 sum, then stores float32
    weights = (1.0 / np.maximum(counts, 1)).astype(np.float32)
    index = np.zeros((batch, length, length), np.float32)
    columns = np.tile(np.arange(length), batch)
    index[rows, group.ravel(), columns] = weights[rows, group.ravel()]
    missing = [np.flatnonzero(row) for row in inside]
    return LayerTransformation(fixed, index, missing, [length - len(m) for m in missing])


def restore_missing(tags: Ints, missing: list[Ints], table: TagTable) -> Ints:
    """Upstream's re-insertion of merged tokens: for each ascending position ``m`` of a row's ``missing``,
    insert after ``tags[m - 1]`` its continuation (``I-X`` or ``O``); keep each row's first ``length`` tags."""
    batch, length = tags.shape
    out = np.empty_like(tags)
    for row in range(batch):
        positions = missing[row]
        if len(positions) == 0:
            out[row] = tags[row]
            continue
        total = length + len(positions)
        inserted = np.zeros(total, bool)
        inserted[positions] = True
        merged = np.empty(total, np.int64)
        merged[~inserted] = tags[row]
        # an inserted run continues the last original tag before it (continuation is idempotent)
        last = np.maximum.accumulate(np.where(inserted, 0, np.arange(total)))
        merged[inserted] = table.to_inside[merged[last[inserted]]]
        out[row] = merged[:length]
    return out
