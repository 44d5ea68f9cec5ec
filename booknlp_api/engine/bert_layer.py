"""Replaces ``BertLayer.forward`` by ones that compute fewer rows: a BERT's last layer, after its self-attention,
only at chosen rows (``last_layer_at``); any layer, except for its attention, only at a padded batch's real
positions (``padding_skipped``).

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
from typing import Any, NamedTuple

import torch

MIN_ROWS = 64
"""Fewest rows either side multiplies (MKL's small-matrix path starts below 12 here; the margin is for other CPUs)."""
PROBE_ROWS = (MIN_ROWS, MIN_ROWS + 1, 97, 300)
LEAST_PADDING = 0.1
"""``padding_skipped`` leaves a batch with less padding than this to upstream's layers, where gathering and
scattering the rows costs about what it saves."""


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


@contextlib.contextmanager
def padding_skipped(bert: Any, mask: torch.Tensor, layers: slice = slice(None)) -> Iterator[None]:
    """While inside, ``bert``'s ``layers`` compute their linear layers, GELUs and LayerNorms only at the positions
    ``mask`` (batch, length) marks real, and zeros at padding; each attention still runs on the whole padded shape.

    Bit-identical at the real positions: a padded key's score is the attention mask's most negative float
    whatever the key (the mask's -3.4e38 absorbs it), so its weight is exactly zero and its value adds nothing;
    and a linear layer's rows are row-independent (``rows_independent``). Readers weigh padding by zero."""
    real = mask.to(torch.bool)
    chosen = list(bert.encoder.layer)[layers]
    count = int(real.sum())
    plain = all(_plain_sdpa(layer) for layer in chosen)
    if count > (1 - LEAST_PADDING) * real.numel() or count < MIN_ROWS or not plain:
        yield
        return

    flat = real.flatten()
    rows = Rows(flat.nonzero().squeeze(1), (~flat).nonzero().squeeze(1))

    def forward_of(layer: Any) -> Any:
        def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    *_: Any, **__: Any) -> tuple[torch.Tensor]:
            return (layer_at_real_rows(layer, hidden_states, attention_mask, rows),)
        return forward

    for layer in chosen:
        layer.forward = forward_of(layer)
    try:
        yield
    finally:
        for layer in chosen:
            del layer.forward


@contextlib.contextmanager
def read_rows_only(bert: Any, mask: torch.Tensor, rows: torch.Tensor) -> Iterator[None]:
    """While inside, ``bert`` computes what a head reading its last layer at ``rows`` needs: the layers before the
    last skip ``mask``'s padding (``padding_skipped``), the last computes only at ``rows`` (``last_layer_at``)."""
    with padding_skipped(bert, mask, slice(None, -1)), last_layer_at(bert, rows):
        yield


def _plain_sdpa(layer: Any) -> bool:
    attention = layer.attention.self
    return (type(attention).__name__ == "BertSdpaSelfAttention" and attention.position_embedding_type == "absolute"
            and not attention.is_decoder and not layer.training and not layer.chunk_size_feed_forward)


class Rows(NamedTuple):
    """A padded batch's positions, flattened (batch * length): the real ones and the padding, each ascending."""

    real: torch.Tensor
    padding: torch.Tensor


def layer_at_real_rows(layer: Any, hidden: torch.Tensor, mask: torch.Tensor | None, rows: Rows) -> torch.Tensor:
    """``BertLayer.forward`` (eval mode, SDPA attention) with every per-position step at the real positions
    only (zeros elsewhere), the attention on the whole padded shape as transformers' ``BertSdpaSelfAttention``.
    The positions are found once per batch (``rows``), not once per gather and scatter."""
    attention = layer.attention.self
    batch, length, size = hidden.shape
    real = hidden.reshape(-1, size).index_select(0, rows.real)

    def padded(values: torch.Tensor) -> torch.Tensor:
        whole = values.new_empty(batch * length, values.shape[-1])  # the rows' dtype (bfloat16 under autocast)
        whole.index_copy_(0, rows.real, values).index_fill_(0, rows.padding, 0)
        return whole.view(batch, length, -1)

    def heads(values: torch.Tensor) -> torch.Tensor:
        return padded(values).view(batch, -1, attention.num_attention_heads,
                                   attention.attention_head_size).transpose(1, 2)

    context = torch.nn.functional.scaled_dot_product_attention(
        heads(attention.query(real)), heads(attention.key(real)), heads(attention.value(real)),
        attn_mask=mask, dropout_p=0.0, is_causal=False)
    context = context.transpose(1, 2).reshape(batch * length, attention.all_head_size).index_select(0, rows.real)
    attended = layer.attention.output(context, real)
    return padded(layer.output(layer.intermediate(attended), attended))
