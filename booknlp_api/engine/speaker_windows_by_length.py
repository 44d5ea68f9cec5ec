"""Fast mode: speaker attribution scores its quote windows in batches of similar length.

Upstream batches the windows in book order, 32 at a time, each batch padded to its longest window. The
linear layers already skip that padding (``bert_layer.padding_skipped``), but self-attention runs on the
padded shape, and its work grows with the square of the padded length: on *A Christmas Carol* (694
windows of 148-354 word pieces, 17% padding) windows sorted by length need 73% of the attention work of
book order. Here the windows are regrouped by length into as many batches as upstream's, of nearly equal
size (at most 32), scored, and each window's scores go back to its place in upstream's batches, where
upstream's loop reads them. A window's scores may change in the last bits (its padding and
batch-mates change the shapes the kernels see), so this is fast mode only; agreement in docs/PERFORMANCE.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

BATCH_SIZE = 32
"""Upstream's batch size for speaker windows; no regrouped batch is larger."""

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Regrouped:
    """Upstream's speaker batches regrouped by window length."""

    inputs: list[Batch]
    matrices: list[Batch]
    places: list[list[tuple[int, int]]]
    """For each regrouped batch, the (upstream batch, row) of each of its windows."""
    sizes: list[int]
    """Windows in each upstream batch."""

    def scatter(self, scores: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per upstream batch, its windows' rows of ``scores`` (one tensor per regrouped batch), in its order."""
        first = scores[0]
        out = [first.new_empty((size, *first.shape[1:])) for size in self.sizes]
        for batch_scores, places in zip(scores, self.places, strict=True):
            for row, (batch, place) in enumerate(places):
                out[batch][place] = batch_scores[row]
        return out


def regroup(inputs: Sequence[Batch], matrices: Sequence[Batch]) -> Regrouped:
    """``inputs`` (``toks``, ``mask``) and ``matrices`` (``cands``, ``quote``, each window's ``candidates``) as
    ``get_batches`` built them, regrouped: windows sorted by real length (ties in book order), cut into
    batches of nearly equal size, each trimmed to its longest window."""
    lengths = [length for batch in inputs for length in batch["mask"].sum(dim=1).tolist()]
    places = [(b, row) for b, batch in enumerate(inputs) for row in range(batch["toks"].shape[0])]
    order = sorted(range(len(places)), key=lambda window: (lengths[window], window))
    count = max(-(-len(order) // BATCH_SIZE), 1)
    groups = [group.tolist() for group in torch.tensor(order, dtype=torch.long).tensor_split(count)]
    out = Regrouped([], [], [], [int(batch["toks"].shape[0]) for batch in inputs])
    for group in groups:
        width = max(lengths[window] for window in group)
        chosen = [places[window] for window in group]
        out.inputs.append(_stacked(inputs, chosen, width))
        out.matrices.append(_stacked(matrices, chosen, width))
        out.places.append(chosen)
    return out


def _stacked(batches: Sequence[Batch], chosen: list[tuple[int, int]], width: int) -> Batch:
    """The chosen rows of each tensor, zero-padded or trimmed to ``width`` along the word-piece axis (the last)
    where it has one: a window never reaches past its real length, and its batch was padded with zeros."""
    stacked = {}
    for key in batches[0]:
        first = batches[chosen[0][0]][key]
        if first.dim() == 1:  # one value per window
            stacked[key] = torch.stack([batches[b][key][row] for b, row in chosen])
            continue
        out = first.new_zeros((len(chosen), *first.shape[1:-1], width))
        for index, (b, row) in enumerate(chosen):
            values = batches[b][key][row, ..., :width]
            out[index, ..., :values.shape[-1]] = values
        stacked[key] = out
    return stacked
