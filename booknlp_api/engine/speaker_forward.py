"""Replaces ``BERTSpeakerID.forward`` (speaker attribution's scoring) with the same scores for less BERT work.

Upstream scores each candidate from the speaker BERT's last layer, read only through the candidate and
quote averaging matrices (``cands``, ``quote``): of a ~250-word-piece quote window, about a dozen
positions have a non-zero weight. So the last layer runs, after its self-attention, only at those
positions (``bert_layer.py`` says how, and why that is bit-identical): on the small model (8 layers)
about 8% of attribution's BERT work. The layers before it skip the batch's padding (windows padded to the
batch's longest; 14% of the positions on *The Call of the Wild*) in all but the attention itself.
"""

from __future__ import annotations

from typing import Any

import torch

from booknlp_api.engine.bert_layer import MIN_ROWS, least_rows, read_rows, read_rows_only, rows_independent
from booknlp_api.models.bert import import_upstream


def applies(model: Any) -> bool:
    """Whether this replacement gives ``model``'s (a ``BERTSpeakerID``) scores exactly on this machine."""
    return rows_independent(model.bert)


class SpeakerForward:
    """A drop-in ``forward`` for one ``BERTSpeakerID`` instance (or any module with its ``bert``, ``fc``,
    ``tanh`` and ``fc2``)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.upstream = import_upstream("booknlp.english.speaker_attribution").BERTSpeakerID.forward

    def __call__(self, batch_x: dict[str, torch.Tensor], batch_m: dict[str, torch.Tensor]) -> torch.Tensor:
        batch, length = batch_x["toks"].shape
        if self.model.training or batch * length < MIN_ROWS:
            return self.upstream(self.model, batch_x, batch_m)
        rows = read_positions(batch_m["cands"], batch_m["quote"], least=least_rows(batch))
        with read_rows_only(self.model.bert, batch_x["mask"], rows):
            return self.upstream(self.model, batch_x, batch_m)


def read_positions(*matrices: torch.Tensor, least: int = 1) -> torch.Tensor:
    """``read_rows`` for the positions some row of the (batch, candidates, length) ``matrices`` weighs."""
    read = torch.zeros(matrices[0].shape[0], matrices[0].shape[2], dtype=torch.bool, device=matrices[0].device)
    for matrix in matrices:
        read |= (matrix != 0).any(dim=1)
    return read_rows(read, least)
