"""``bert_layer.padding_skipped``: a BERT's layers computed at the real positions of a padded batch only give
upstream's hidden states there bit for bit, on generated batches (the speaker and coref replacements use it)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertModel

from booknlp_api.engine.bert_layer import LEAST_PADDING, MIN_ROWS, padding_skipped


@pytest.fixture(scope="module")
def bert() -> BertModel:
    torch.manual_seed(3)
    config = BertConfig(vocab_size=300, hidden_size=256, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=1024, attn_implementation="sdpa")
    return BertModel(config).eval()


def _batch(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(lengths)
    ids = torch.randint(1, 300, (len(lengths), width), generator=torch.Generator().manual_seed(seed))
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


def _hidden(bert: BertModel, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        return bert(ids, attention_mask=mask, output_hidden_states=True, return_dict=False)[2]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 120), min_size=1, max_size=8), seed=st.integers(0, 2**31),
       threads=st.sampled_from([1, 2]), last=st.booleans())
def test_real_positions_are_upstreams_bit_for_bit(bert: BertModel, lengths: list[int], seed: int, threads: int,
                                                  last: bool) -> None:
    ids, mask = _batch(lengths, seed)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        theirs = _hidden(bert, ids, mask)
        with padding_skipped(bert, mask, slice(None) if last else slice(None, -1)):
            ours = _hidden(bert, ids, mask)
    finally:
        torch.set_num_threads(before)
    real = mask.bool()
    for layer, (one, other) in enumerate(zip(theirs, ours, strict=True)):
        assert torch.equal(one[real].view(torch.int32), other[real].view(torch.int32)), layer
    assert not any("forward" in vars(layer) for layer in bert.encoder.layer)  # upstream's layers again


def test_only_real_positions_reach_the_feed_forward(bert: BertModel) -> None:
    """The saving is real: with enough padding the feed-forward sees the real rows, and without it the whole batch."""
    seen: list[torch.Size] = []
    hook = bert.encoder.layer[0].intermediate.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    try:
        ids, mask = _batch([100, 40, 30], seed=1)  # 170 of 300 positions real
        with padding_skipped(bert, mask):
            _hidden(bert, ids, mask)
        assert seen == [torch.Size([170, 256])]
        seen.clear()
        full = int((1 - LEAST_PADDING) * 300) + 1
        ids, mask = _batch([100, 100, full - 200], seed=2)  # too little padding to pay for the gathering
        with padding_skipped(bert, mask):
            _hidden(bert, ids, mask)
        ids, mask = _batch([MIN_ROWS - 1], seed=3)  # too few rows for row-independent products
        with padding_skipped(bert, torch.cat([mask, torch.zeros_like(mask)], dim=1)):
            assert not any("forward" in vars(layer) for layer in bert.encoder.layer)
    finally:
        hook.remove()
    assert seen == [torch.Size([3, 100, 256])]
