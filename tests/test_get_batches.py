"""Equivalence: our tagger batch building against upstream's layered_reader.get_batches (inference path)."""

from __future__ import annotations

import weakref
from types import SimpleNamespace

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from booknlp_api.engine.get_batches import get_batches
from booknlp_api.models.bert import import_upstream

PIECES = ["[CAP]", "the", "##s", "emma", "##'", "x", "[UNK]", "unknown-piece"]
VOCAB = {piece: number + 100 for number, piece in enumerate(PIECES[:-1])}


def convert(tokens: list[str]) -> list[int]:
    return [VOCAB.get(token, 1) for token in tokens]


token = st.lists(st.sampled_from(PIECES), min_size=0, max_size=4)


@st.composite
def chunks(draw: st.DrawFn) -> list[list[list[str]]]:
    count = draw(st.integers(0, 40))
    out = []
    for _ in range(count):
        words = draw(st.lists(token, max_size=8))
        # long chunks cross upstream's 100- and 200-piece batch-size thresholds
        repeat = draw(st.sampled_from([1, 1, 1, 1, 12, 30]))
        out.append([["[CLS]"]] + words * repeat + [["[SEP]"]])
    return out


def _same(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.numpy().tobytes() == b.numpy().tobytes()


@settings(max_examples=30, deadline=None)
@given(chunks())
def test_get_batches_matches_upstream(sentences: list[list[list[str]]]) -> None:
    upstream = import_upstream("booknlp.common.layered_reader").get_batches
    model = SimpleNamespace(tokenizer=SimpleNamespace(convert_tokens_to_ids=convert))
    theirs = upstream(model, [[list(t) for t in s] for s in sentences], 32, {}, training=False)
    ours = get_batches(convert, sentences, 32).upstream()
    assert ours[0] == theirs[0]
    for field in (1, 2, 3, 4):
        _same(ours[field], theirs[field])  # type: ignore[arg-type]
    assert np.array_equal(ours[5], theirs[5])  # type: ignore[arg-type]
    assert ours[6] == theirs[6]


def test_transforms_are_built_when_read_not_kept() -> None:
    """Each batch's averaging matrix is built on reading and freed when its reader lets go of it."""
    sentences = [[["[CLS]"], ["the"], ["emma", "##s"], ["[SEP]"]]] * 70  # three batches of 32, 32, 6
    batches = get_batches(convert, sentences, 32)
    assert len(batches.transforms) == len(batches.data) == 3
    first = batches.transforms[0]
    assert first is not batches.transforms[0] and torch.equal(first, batches.transforms[0])
    freed = weakref.ref(first)
    del first
    assert freed() is None
