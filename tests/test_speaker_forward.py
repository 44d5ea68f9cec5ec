"""``SpeakerForward`` gives upstream's ``BERTSpeakerID.forward`` scores bit for bit, on generated batches.

Upstream's method is called unbound on a stand-in holding what it reads (a BERT with the small
speaker model's layer sizes, random weights, and the two scoring layers), so no model file is needed.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import BertConfig, BertModel

from booknlp_api.engine.speaker_forward import MIN_ROWS, SpeakerForward, applies, read_positions
from booknlp_api.models.bert import import_upstream

speaker_attribution = import_upstream("booknlp.english.speaker_attribution")
CANDIDATES = 10


class StandIn(nn.Module):
    """What ``BERTSpeakerID.forward`` reads, at the small model's hidden size (256, 4 heads)."""

    def __init__(self, layers: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=300, hidden_size=256, num_hidden_layers=layers, num_attention_heads=4,
                            intermediate_size=1024, attn_implementation="sdpa")
        self.bert = BertModel(config)
        self.tanh = nn.Tanh()
        self.fc = nn.Linear(2 * 256, 100)
        self.fc2 = nn.Linear(100, 1)
        self.eval()


@pytest.fixture(scope="module")
def models() -> dict[int, StandIn]:
    return {layers: StandIn(layers, seed=layers) for layers in (1, 3)}


@st.composite
def batches(draw: st.DrawFn) -> tuple[int, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Ids, mask and averaging matrices shaped like ``SpeakerBatches``' (padded to the batch's longest)."""
    size = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(3, 90), min_size=size, max_size=size))
    # mostly batches the replacement computes (smaller ones run upstream's forward)
    lengths[0] = max(lengths[0], draw(st.sampled_from([3, -(-MIN_ROWS // size)])))
    width = max(lengths)
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    toks = torch.randint(1, 300, (size, width), generator=generator)
    mask = torch.zeros(size, width, dtype=torch.long)
    cands = torch.zeros(size, CANDIDATES, width)
    quote = torch.zeros(size, CANDIDATES, width)
    for row, length in enumerate(lengths):
        toks[row, length:] = 0
        mask[row, :length] = 1
        spans = draw(st.lists(st.tuples(st.integers(1, length - 2), st.integers(1, 4)), max_size=CANDIDATES))
        for c_idx, (start, span) in enumerate(spans):
            end = min(start + span, length - 1)
            cands[row, c_idx, start:end] = 1. / (end - start)
        where = draw(st.integers(1, length - 2))
        quote[row, :, where] = 1.
    layers = draw(st.sampled_from([1, 3]))
    return layers, {"toks": toks, "mask": mask}, {"cands": cands, "quote": quote}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(batch=batches(), threads=st.sampled_from([1, 2]))
def test_scores_are_upstreams_bit_for_bit(models: dict[int, StandIn], batch: tuple[Any, ...], threads: int) -> None:
    layers, batch_x, batch_m = batch
    model = models[layers]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            theirs = speaker_attribution.BERTSpeakerID.forward(model, batch_x, batch_m)
            ours = SpeakerForward(model)(batch_x, batch_m)
    finally:
        torch.set_num_threads(before)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert torch.equal(ours.view(torch.int32), theirs.view(torch.int32))
    # the last layer is restored to upstream's after each call
    assert "forward" not in vars(model.bert.encoder.layer[-1])


def test_only_read_positions_reach_the_last_layer(models: dict[int, StandIn]) -> None:
    """The saving is real: the last layer's feed-forward sees the read positions, not the window."""
    model = models[1]
    cands = torch.zeros(2, CANDIDATES, 40)
    quote = torch.zeros(2, CANDIDATES, 40)
    cands[0, 0, 3:5] = .5
    cands[1, 2, 7] = 1.
    quote[0, :, 10] = 1.
    quote[1, :, 20] = 1.
    assert read_positions(cands, quote).tolist() == [[3, 4, 10], [7, 20, 0]]
    assert read_positions(cands, quote, least=5).tolist() == [[3, 4, 10, 0, 1], [7, 20, 0, 1, 2]]
    least = -(-MIN_ROWS // 2)
    seen: list[torch.Size] = []
    intermediate = model.bert.encoder.layer[-1].intermediate
    hook = intermediate.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    try:
        with torch.no_grad():
            SpeakerForward(model)({"toks": torch.randint(1, 300, (2, 40)), "mask": torch.ones(2, 40, dtype=torch.long)},
                                  {"cands": cands, "quote": quote})
    finally:
        hook.remove()
    assert seen == [torch.Size([2, least, 256])]  # not the 40 positions of the window


def test_installed_only_where_rows_are_independent(models: dict[int, StandIn],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert applies(models[1])
    # a machine whose linear layers gave a row different bits in a smaller product is refused
    linear = models[1].bert.encoder.layer[-1].intermediate.dense
    real = type(linear).forward
    monkeypatch.setattr(linear, "forward", lambda rows: real(linear, rows) + (rows.shape[0] < 2048) * 1e-7)
    assert not applies(models[1])
