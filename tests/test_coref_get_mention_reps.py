"""``MentionReps`` gives upstream's ``BERTCorefTagger.get_mention_reps`` bit for bit, on generated batches.

Upstream's method is called unbound on a stand-in holding what it reads (a BERT with the small coref
model's layer sizes, random weights, and the mention layers), so no model file is needed.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import BertConfig, BertModel

from booknlp_api.engine.bert_layer import MIN_ROWS
from booknlp_api.engine.coref_get_mention_reps import MentionReps, applies
from booknlp_api.models.bert import import_upstream

coref_module = import_upstream("booknlp.english.bert_coref_quote_pronouns")
HIDDEN = 256


class StandIn(nn.Module):
    """What ``get_mention_reps`` reads, at the small coref model's sizes (2 layers, 256 wide, 4 heads)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.bert = BertModel(BertConfig(vocab_size=300, hidden_size=HIDDEN, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=1024, attn_implementation="sdpa"))
        self.hidden_dim = HIDDEN
        self.tanh = nn.Tanh()
        self.attention1 = nn.Linear(HIDDEN, HIDDEN)
        self.attention2 = nn.Linear(HIDDEN, 1)
        self.width_embeddings = nn.Embedding(12, 20)
        self.quote_embeddings = nn.Embedding(3, 20)
        self.eval()


@pytest.fixture(scope="module")
def model() -> StandIn:
    return StandIn()


@st.composite
def batches(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    """One coref batch shaped like ``CorefData``'s: word pieces averaged into words, mentions over words."""
    sequences = draw(st.integers(1, 4))
    least = -(-MIN_ROWS // sequences)
    pieces = [draw(st.lists(st.integers(1, 3), min_size=1, max_size=30)) for _ in range(sequences)]
    length = max(draw(st.sampled_from([3, least])), max(2 + sum(p) for p in pieces))
    words = max(len(p) for p in pieces)
    mentions = draw(st.integers(1, 5))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    input_ids = torch.randint(1, 300, (sequences, length), generator=generator)
    mask = torch.zeros(sequences, length, dtype=torch.long)
    transforms = torch.zeros(sequences, words, length)
    matrix = torch.zeros(sequences, mentions, words)
    starts, ends, index = [], [], []
    for s, word_pieces in enumerate(pieces):
        mask[s, :2 + sum(word_pieces)] = 1
        input_ids[s, 2 + sum(word_pieces):] = 0
        at = 1  # after [CLS]
        for w, count in enumerate(word_pieces):
            transforms[s, w, at:at + count] = 1. / count
            at += count
        for m in range(draw(st.integers(0, mentions))):
            start = draw(st.integers(0, len(word_pieces) - 1))
            end = min(start + draw(st.integers(0, 3)), len(word_pieces) - 1)
            matrix[s, m, start:end + 1] = 1. / (end - start + 1)
            starts.append(s * words + start)
            ends.append(s * words + end)
            index.append(s * mentions + m)
    if not index:  # at least one mention
        matrix[0, 0, 0] = 1.
        starts, ends, index = [0], [0], [0]
    count = len(index)
    return {"input_ids": input_ids, "attention_mask": mask, "starts": torch.LongTensor(starts),
            "ends": torch.LongTensor(ends), "index": torch.LongTensor(index),
            "widths": torch.randint(0, 12, (count,), generator=generator),
            "quotes": torch.randint(0, 3, (count,), generator=generator), "matrix": matrix, "transforms": transforms}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(batch=batches(), threads=st.sampled_from([1, 2]))
def test_mention_reps_are_upstreams_bit_for_bit(model: StandIn, batch: dict[str, Any], threads: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            theirs = coref_module.BERTCorefTagger.get_mention_reps(model, **batch, doTrain=False)
            ours = MentionReps(model)(**batch, doTrain=False)
    finally:
        torch.set_num_threads(before)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert torch.equal(ours.view(torch.int32), theirs.view(torch.int32))
    assert "forward" not in vars(model.bert.encoder.layer[-1])


def test_only_mention_pieces_reach_the_last_layer(model: StandIn) -> None:
    transforms = torch.zeros(1, 3, 200)
    transforms[0, 0, 1:3] = .5
    transforms[0, 1, 3] = 1.
    transforms[0, 2, 4:7] = 1 / 3
    matrix = torch.zeros(1, 2, 3)
    matrix[0, 0, 1:3] = .5  # one mention: words 1 and 2, pieces 3-6
    seen: list[torch.Size] = []
    intermediate = model.bert.encoder.layer[-1].intermediate
    hook = intermediate.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    try:
        with torch.no_grad():
            MentionReps(model)(input_ids=torch.randint(1, 300, (1, 200)),
                               attention_mask=torch.ones(1, 200, dtype=torch.long), starts=torch.LongTensor([1]),
                               ends=torch.LongTensor([2]), index=torch.LongTensor([0]),
                               widths=torch.LongTensor([1]), quotes=torch.LongTensor([0]), matrix=matrix,
                               transforms=transforms, doTrain=False)
    finally:
        hook.remove()
    assert seen == [torch.Size([1, MIN_ROWS, HIDDEN])]  # the floor of rows, not the window's 200
    assert applies(model)
