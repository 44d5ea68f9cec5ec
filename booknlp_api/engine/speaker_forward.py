"""Replaces ``BERTSpeakerID.forward`` (speaker attribution's scoring) with the same scores for less BERT work.

Upstream scores each candidate from the speaker BERT's last layer, read only through the candidate and
quote averaging matrices (``cands``, ``quote``): of a ~250-word-piece quote window, about a dozen
positions have a non-zero weight. Here the last layer's self-attention runs as upstream's (every
position), and what follows it per position (attention output projection and LayerNorm, feed-forward,
LayerNorm: three quarters of the layer's matrix work) only at the positions the matrices read; the rest
of the layer's output stays zero, which the matrices multiply by zero. On the small model (8 layers)
that removes about a tenth of attribution's BERT work.

Bit-identical because a row of a linear layer, GELU or LayerNorm comes out the same whatever the rows
computed with it, *once there are enough rows*: with fewer than 12 rows MKL takes another path (on this
2-vCPU AVX2 machine: rows 1-3 differ with one thread, 1-11 except 4 and 8 with two). So both sides keep
at least ``MIN_ROWS`` rows (batches smaller than that run upstream's forward), and ``applies`` checks the
property on the machine itself when the model is installed. tests/test_speaker_forward.py compares the
scores with upstream's bit for bit on generated batches; tests/test_parity.py compares the native files.
CUDA picks its GEMM by shape, so the replacement is installed only on CPU models.
"""
from __future__ import annotations

from typing import Any

import torch

from booknlp_api.models.bert import import_upstream

MIN_ROWS = 64
"""Fewest rows either side multiplies (MKL's small-matrix path starts below 12 here; the margin is for other CPUs)."""
PROBE_ROWS = (MIN_ROWS, MIN_ROWS + 1, 97, 300)


def applies(model: Any) -> bool:
    """Whether this replacement gives ``model``'s (a ``BERTSpeakerID``) scores exactly: a CPU model with a plain
    encoder layer last, whose linear layers give each row the same bits in ``PROBE_ROWS`` rows as in 2,048."""
    config = model.bert.config
    if next(model.parameters()).device.type != "cpu" or config.is_decoder or config.chunk_size_feed_forward:
        return False
    layer = model.bert.encoder.layer[-1]
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for linear in (layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
            rows = torch.randn(2048, linear.in_features, generator=generator)
            whole = linear(rows)
            if not all(torch.equal(linear(rows[:count]), whole[:count]) for count in PROBE_ROWS):
                return False
    return True


class SpeakerForward:
    """A drop-in ``forward`` for one ``BERTSpeakerID`` instance (or any module with its ``bert``, ``fc``,
    ``tanh`` and ``fc2``)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.upstream = import_upstream("booknlp.english.speaker_attribution").BERTSpeakerID.forward
        self.last = model.bert.encoder.layer[-1]

    def __call__(self, batch_x: dict[str, torch.Tensor], batch_m: dict[str, torch.Tensor]) -> torch.Tensor:
        batch, length = batch_x["toks"].shape
        if self.model.training or batch * length < MIN_ROWS:
            return self.upstream(self.model, batch_x, batch_m)
        rows = read_positions(batch_m["cands"], batch_m["quote"], least=-(-MIN_ROWS // batch))
        last = self.last

        def last_layer(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                       *_: Any, **__: Any) -> tuple[torch.Tensor]:
            return (layer_at_rows(last, hidden_states, attention_mask, rows),)

        # The instance attribute shadows BertLayer.forward for this one call; the encoder calls it as usual.
        last.forward = last_layer
        try:
            return self.upstream(self.model, batch_x, batch_m)
        finally:
            del last.forward


def read_positions(*matrices: torch.Tensor, least: int = 1) -> torch.Tensor:
    """(batch, S): for each sequence, the positions some matrix row weighs (ascending), then unread positions
    to fill up to S, the largest count of read positions in the batch or ``least``, whichever is larger."""
    read = torch.zeros(matrices[0].shape[0], matrices[0].shape[2], dtype=torch.bool, device=matrices[0].device)
    for matrix in matrices:
        read |= (matrix != 0).any(dim=1)
    width = min(max(int(read.sum(dim=1).max()), least), read.shape[1])
    # stable sort of "not read": read positions first, each group in position order
    return torch.argsort((~read).to(torch.int8), dim=1, stable=True)[:, :width]


def layer_at_rows(layer: Any, hidden: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """``BertLayer.forward`` (eval mode) with its self-attention at every position and the rest at ``rows``
    only; zeros elsewhere."""
    batch, _, size = hidden.shape
    index = rows[:, :, None].expand(batch, rows.shape[1], size)
    context = layer.attention.self(hidden, attention_mask=mask)[0]
    attended = layer.attention.output(context.gather(1, index), hidden.gather(1, index))
    out = layer.output(layer.intermediate(attended), attended)
    return torch.zeros_like(hidden).scatter_(1, index, out)
