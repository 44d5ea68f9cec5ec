"""Equivalence: our numpy Viterbi against upstream's CRF.viterbi_decode, bit for bit, ties included."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from booknlp_api.engine.viterbi_decode import viterbi_decode
from booknlp_api.models.bert import import_upstream


@st.composite
def crf_inputs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n_labels = draw(st.integers(3, 12))
    batch = draw(st.integers(1, 5))
    seq_len = draw(st.integers(1, 15))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = np.random.default_rng(seed)
    if draw(st.booleans()):
        # small integers make ties frequent: the first maximum must win, as in torch
        transitions = generator.integers(-2, 3, (n_labels, n_labels)).astype(np.float32)
        logits = generator.integers(-2, 3, (batch, seq_len, n_labels)).astype(np.float32)
    else:
        transitions = generator.standard_normal((n_labels, n_labels)).astype(np.float32)
        logits = (generator.standard_normal((batch, seq_len, n_labels)) * 5).astype(np.float32)
    lens = generator.integers(-1, seq_len + 2, batch)
    return torch.from_numpy(transitions), torch.from_numpy(logits), torch.from_numpy(lens)


@settings(max_examples=100, deadline=None)
@given(crf_inputs())
def test_viterbi_decode_matches_upstream(inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    transitions, logits, lens = inputs
    crf = import_upstream("booknlp.common.crf").CRF(transitions.shape[0] - 2, torch.device("cpu"))
    with torch.no_grad():
        crf.transitions.copy_(transitions)
        scores, paths = crf.viterbi_decode(logits, lens)
    ours_scores, ours_paths = viterbi_decode(transitions.numpy(), crf.start_idx, crf.stop_idx,
                                             logits.numpy(), lens.numpy())
    assert np.array_equal(ours_paths, paths.numpy())
    assert ours_scores.tobytes() == scores.numpy().tobytes()
