"""Fast mode's speaker windows regrouped by length (``engine/speaker_windows_by_length.py``): every window scored
once, in a batch of similar lengths, and its scores handed back to its place in upstream's batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from booknlp_api.engine.speaker_forward import SpeakerForward
from booknlp_api.engine.speaker_scores_forked import scores_shared
from booknlp_api.engine.speaker_windows_by_length import BATCH_SIZE, regroup
from booknlp_api.models.bert import import_upstream
from tests.test_speaker_forward import StandIn

speaker_attribution = import_upstream("booknlp.english.speaker_attribution")
CANDIDATES = 10
Batch = dict[str, torch.Tensor]


def upstream_batches(lengths: list[int], seed: int) -> tuple[list[Batch], list[Batch]]:
    """Quote windows of these real lengths, in upstream's batches of 32 in book order, each padded to its
    longest, with candidate and quote matrices and our ``candidates`` count, as ``SpeakerBatches`` builds them."""
    generator = torch.Generator().manual_seed(seed)
    inputs, matrices = [], []
    for first in range(0, len(lengths), BATCH_SIZE):
        chunk = lengths[first:first + BATCH_SIZE]
        width = max(chunk)
        toks = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        cands = torch.zeros(len(chunk), CANDIDATES, width)
        quote = torch.zeros(len(chunk), CANDIDATES, width)
        counts = torch.zeros(len(chunk), dtype=torch.long)
        for row, length in enumerate(chunk):
            toks[row, :length] = torch.randint(1, 300, (length,), generator=generator)
            mask[row, :length] = 1
            count = int(torch.randint(1, CANDIDATES + 1, (1,), generator=generator))
            for c_idx in range(count):
                start = int(torch.randint(1, length - 1, (1,), generator=generator))
                cands[row, c_idx, start:start + 2] = 0.5
            quote[row, :, length - 2] = 1.
            counts[row] = count
        inputs.append({"toks": toks, "mask": mask})
        matrices.append({"cands": cands, "quote": quote, "candidates": counts})
    return inputs, matrices


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(4, 120), min_size=1, max_size=150), seed=st.integers(0, 2**31))
def test_every_window_once_sorted_by_length_with_its_own_values(lengths: list[int], seed: int) -> None:
    inputs, matrices = upstream_batches(lengths, seed)
    grouped = regroup(inputs, matrices)
    places = [place for batch in grouped.places for place in batch]
    assert sorted(places) == [(b, row) for b, batch in enumerate(inputs) for row in range(len(batch["toks"]))]
    sizes = [len(batch) for batch in grouped.places]
    assert len(sizes) == len(inputs) and max(sizes) <= BATCH_SIZE and max(sizes) - min(sizes) <= 1
    real = [int(length) for batch in grouped.inputs for length in batch["mask"].sum(dim=1)]
    assert real == sorted(lengths)  # shortest first
    for new_inputs, new_matrices, batch_places in zip(grouped.inputs, grouped.matrices, grouped.places, strict=True):
        width = new_inputs["toks"].shape[1]
        assert width == int(new_inputs["mask"].sum(dim=1).max())  # trimmed to its longest window
        for row, (b, old) in enumerate(batch_places):
            length = int(inputs[b]["mask"][old].sum())
            for new, source in ((new_inputs, inputs[b]), (new_matrices, matrices[b])):
                for key in ("toks", "mask", "cands", "quote"):
                    if key in source:
                        assert torch.equal(new[key][row, ..., :length], source[key][old, ..., :length])
                        assert not new[key][row, ..., length:].any()
            assert new_matrices["candidates"][row] == matrices[b]["candidates"][old]
    # scores hand back to each window's place in upstream's batches
    marks = [torch.tensor([float(b * 1000 + old) for b, old in batch_places]).view(-1, 1, 1).repeat(1, CANDIDATES, 1)
             for batch_places in grouped.places]
    back = grouped.scatter(marks)
    for b, batch in enumerate(back):
        assert batch.shape == (len(inputs[b]["toks"]), CANDIDATES, 1)
        assert batch[:, 0, 0].tolist() == [float(b * 1000 + row) for row in range(len(batch))]


class SpeakerStandIn(StandIn):
    """A ``BERTSpeakerID`` at the small model's hidden size, random weights: batches come ready-made."""

    def __init__(self, inputs: list[Batch], matrices: list[Batch]) -> None:
        super().__init__(layers=2, seed=0)
        self.built = (inputs, matrices)

    def get_batches(self, *_: Any) -> tuple[list[Batch], list[Batch], list[None], list[None]]:
        inputs, matrices = self.built
        return inputs, matrices, [None] * len(inputs), [None] * len(inputs)


def test_regrouped_scores_are_upstreams_within_float_noise() -> None:
    """Regrouping changes each window's padding and batch-mates, not what it scores: upstream's loop gets each
    window's scores (to float noise), in its own batches and order, and picks the same candidates."""
    lengths = [int(x) for x in torch.randint(20, 140, (75,), generator=torch.Generator().manual_seed(3))]
    inputs, matrices = upstream_batches(lengths, seed=5)
    model = SpeakerStandIn(inputs, matrices)
    with torch.inference_mode():
        theirs = [speaker_attribution.BERTSpeakerID.forward(model, x, m) for x, m in zip(inputs, matrices, strict=True)]
        model.forward = SpeakerForward(model)
        with scores_shared(model, 1, by_length=True):
            built_x, built_m, _, _ = model.get_batches()
            ours = [model.forward(x, m) for x, m in zip(built_x, built_m, strict=True)]
    for mine, upstream in zip(ours, theirs, strict=True):
        assert mine.shape == upstream.shape
        assert torch.allclose(mine, upstream, atol=1e-5, rtol=1e-5)
        assert torch.equal(mine.argmax(dim=1), upstream.argmax(dim=1))


def test_scoring_ahead_keeps_upstreams_loop_order() -> None:
    inputs, matrices = upstream_batches([30, 40, 50] * 30, seed=1)
    model = SpeakerStandIn(inputs, matrices)
    model.forward = score = SpeakerForward(model)
    with torch.inference_mode(), scores_shared(model, 1, by_length=True):
        built_x, built_m, _, _ = model.get_batches()
        with pytest.raises(RuntimeError, match="out of order"):
            model.forward(built_x[1], built_m[1])
    assert model.forward is score and "get_batches" not in vars(model)  # the methods from before again
