"""Tagger batch building, a byte-identical replacement for ``booknlp.common.layered_reader.get_batches``
(its inference path, ``training=False``).

Upstream builds every word-piece-to-token averaging matrix as nested Python lists of floats (one list of
``n`` zeros per token: quadratic in a 500-piece chunk) and pads them one element at a time. Here each
batch's matrix is one zeroed float32 array filled by index, with the same values (``float32(1 / pieces)``).

The batch order and sizes are parameters (``order``, ``sizes``) so another mode can choose its own;
``upstream_order`` and ``upstream_sizes`` give upstream's: chunks sorted by word-piece count with
``np.argsort``'s default sort, 32 per batch until a batch's longest chunk passes 100 pieces (then 12) or
200 pieces (then 6).

The averaging matrices (~2 KB per token of the book) are ``LazyBatches``: each batch's is built when the
tagger reads it, so a book never holds all of them at once (``engine/lazy_batches.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from booknlp_api.engine.lazy_batches import LazyBatches

Ints = npt.NDArray[np.int64]
Sentence = Sequence[Sequence[str]]
"""One chunk: the word pieces of each token, ``[CLS]`` and ``[SEP]`` included as tokens."""


@dataclass(frozen=True)
class Batches:
    """What upstream's ``get_batches`` returns, field by field (``astuple`` order via ``upstream()``)."""

    sents: list[list[list[str]]]
    data: list[torch.Tensor]
    mask: list[torch.Tensor]
    transforms: Sequence[torch.Tensor]
    orig_token_lens: list[torch.Tensor]
    ordering: Ints
    order_to_batch_map: list[tuple[int, int, int]]
    shapes: list[tuple[Ints, int, int]] = field(default_factory=list, repr=False)
    """Each batch's chunks, longest chunk in tokens and in pieces: what its transform is built from."""

    def upstream(self) -> tuple[object, ...]:
        return (self.sents, self.data, self.mask, self.transforms, self.orig_token_lens, self.ordering,
                self.order_to_batch_map)


def upstream_order(piece_counts: Ints) -> Ints:
    """Upstream's ordering: ``np.argsort`` of the chunks' word-piece counts (default, unstable sort)."""
    return np.argsort(piece_counts)


def upstream_sizes(sorted_piece_counts: Ints, max_batch: int = 32) -> list[int]:
    """Upstream's batch sizes over chunks in batch order; the last batch may be nominally larger than
    what is left (upstream records the nominal size in ``order_to_batch_map``)."""
    sizes = []
    current, start = max_batch, 0
    while start < len(sorted_piece_counts):
        sizes.append(current)
        longest = int(sorted_piece_counts[start:start + current].max())
        start += current
        if longest > 100:
            current = 12
        if longest > 200:
            current = 6
    return sizes


def get_batches(convert_tokens_to_ids: Callable[[list[str]], list[int]], sentences: Sequence[Sentence],
                max_batch: int = 32,
                order: Callable[[Ints], Ints] = upstream_order,
                sizes: Callable[[Ints, int], list[int]] = upstream_sizes) -> Batches:
    """Batches of ``sentences`` for the tagger, exactly as upstream's ``get_batches(..., training=False)``
    when ``order`` and ``sizes`` are upstream's."""
    piece_lens = [np.fromiter((len(toks) for toks in sentence), dtype=np.int64, count=len(sentence))
                  for sentence in sentences]
    piece_counts = np.array([int(lens.sum()) for lens in piece_lens], dtype=np.int64)
    flat = [piece for sentence in sentences for toks in sentence for piece in toks]
    ids = np.asarray(convert_tokens_to_ids(flat), dtype=np.int64) if flat else np.zeros(0, np.int64)
    offsets = np.concatenate(([0], np.cumsum(piece_counts)))
    ordering = order(piece_counts)
    out = Batches([], [], [], [], [], ordering, [])
    start = 0
    for number, size in enumerate(sizes(piece_counts[ordering], max_batch)):
        out.order_to_batch_map.extend((number, size, j) for j in range(size))
        members = ordering[start:start + size]
        start += size
        _add_batch(out, sentences, ids, offsets, members)

    def transform(b: int) -> torch.Tensor:
        members, max_tokens, max_len = out.shapes[b]
        matrix = np.zeros((len(members), max_tokens, max_len), dtype=np.float32)
        for row, m in enumerate(members):
            lens = piece_lens[m]
            token = np.repeat(np.arange(len(lens)), lens)
            # upstream stores the Python float 1./len(toks) and converts it to float32
            weight = (1.0 / np.maximum(lens, 1)).astype(np.float32)
            matrix[row, token, np.arange(len(token))] = weight[token]
        return torch.from_numpy(matrix)

    return dataclasses.replace(out, transforms=LazyBatches(len(out.shapes), transform))


def _add_batch(out: Batches, sentences: Sequence[Sentence], ids: Ints, offsets: Ints, members: Ints) -> None:
    max_len = max(int(offsets[m + 1] - offsets[m]) for m in members)
    max_tokens = max(len(sentences[m]) for m in members)
    data = np.zeros((len(members), max_len), dtype=np.int64)
    mask = np.zeros((len(members), max_len), dtype=np.float32)
    for row, m in enumerate(members):
        n = int(offsets[m + 1] - offsets[m])
        data[row, :n] = ids[offsets[m]:offsets[m + 1]]
        mask[row, :n] = 1
    out.sents.append([[" ".join(toks) for toks in sentences[m]] for m in members])
    out.data.append(torch.from_numpy(data))
    out.mask.append(torch.from_numpy(mask))
    out.shapes.append((members, max_tokens, max_len))
    out.orig_token_lens.append(torch.tensor([len(sentences[m]) for m in members], dtype=torch.int64))
