"""Replaces a BERT's last ``BertLayer.forward`` by one computed, after its self-attention, only at chosen rows.

Upstream's heads read a BERT's last layer through matrices that weigh few positions (speaker attribution:
the candidates and the quote, ~11 of ~250 word pieces; coref: the word pieces of mentions, ~10%). The last
layer's self-attention runs as upstream's (its keys and values come from every position), and what follows
it per position (attention output projection and LayerNorm, feed-forward, LayerNorm: 9 of the layer's
12 H² multiply-adds per position) only at the rows asked for; the layer's other outputs are zeros, which the
heads' matrices multiply by zero.

Bit-identical because a row of a linear layer, GELU or LayerNorm comes out the same whatever the rows
computed with it, *once there are enough rows*: with fewer than 12 MKL takes another path (on the 2-vCPU
AVX2 machine: rows 1-3 differ with one thread, 1-11 except 4 and 8 with two). So both sides keep at least
``MIN_ROWS`` rows (callers run upstream's forward for smaller batches and pad the rows), and
``rows_independent`` checks the property on the machine itself when a model is installed. The CPU SDPA
kernel is not row-independent, hence the whole attention. CUDA picks its GEMM by shape: CPU models only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

MIN_ROWS = 64
"""Fewest rows either side multiplies (MKL's small-matrix path starts below 12 here; the margin is for other CPUs)."""
PROBE_ROWS = (MIN_ROWS, MIN_ROWS + 1, 97, 300)


def rows_independent(bert: Any) -> bool:
    """Whether ``bert`` (a transformers ``BertModel``) is a CPU encoder whose last layer's linear layers give each
    row the same bits in ``PROBE_ROWS`` rows as in 2,048."""
    config = bert.config
    if next(bert.parameters()).device.type != "cpu" or config.is_decoder or config.chunk_size_feed_forward:
        return False
    layer = bert.encoder.layer[-1]
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for linear in (layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
            rows = torch.randn(2048, linear.in_features, generator=generator)
            whole = linear(rows)
            if not all(torch.equal(linear(rows[:count]), whole[:count]) for count in PROBE_ROWS):
                return False
    return True


def read_rows(read: torch.Tensor, least: int = 1) -> torch.Tensor:
    """(batch, S) from a (batch, length) mask of the positions read: each sequence's read positions (ascending),
    then unread ones to fill up to S, the largest count read in the batch or ``least``, whichever is larger."""
    width = min(max(int(read.sum(dim=1).max()), least), read.shape[1])
    # stable sort of "not read": read positions first, each group in position order
    return torch.argsort((~read).to(torch.int8), dim=1, stable=True)[:, :width]


def least_rows(batch: int) -> int:
    """Rows per sequence that give ``batch`` sequences at least ``MIN_ROWS`` rows."""
    return -(-MIN_ROWS // batch)


@contextlib.contextmanager
def last_layer_at(bert: Any, rows: torch.Tensor) -> Iterator[None]:
    """While inside, ``bert``'s last layer computes its output at ``rows`` only (zeros elsewhere)."""
    last = bert.encoder.layer[-1]

    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                *_: Any, **__: Any) -> tuple[torch.Tensor]:
        return (layer_at_rows(last, hidden_states, attention_mask, rows),)

    # The instance attribute shadows BertLayer.forward; the encoder calls the layer as usual.
    last.forward = forward
    try:
        yield
    finally:
        del last.forward


def layer_at_rows(layer: Any, hidden: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """``BertLayer.forward`` (eval mode) with its self-attention at every position and the rest at ``rows``
    only; zeros elsewhere."""
    batch, _, size = hidden.shape
    index = rows[:, :, None].expand(batch, rows.shape[1], size)
    context = layer.attention.self(hidden, attention_mask=mask)[0]
    attended = layer.attention.output(context.gather(1, index), hidden.gather(1, index))
    out = layer.output(layer.intermediate(attended), attended)
    return torch.zeros_like(hidden).scatter_(1, index, out)
