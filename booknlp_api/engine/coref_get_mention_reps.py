"""Replaces ``BERTCorefTagger.get_mention_reps`` (coref's BERT pass) with the same mention representations
for less BERT work.

Upstream averages the coref BERT's last layer into words (``transforms``) and reads the words only through
the mentions (``matrix`` for the averaged and attended representations, ``starts``/``ends`` for the boundary
words, which lie inside mentions): on a novel's window about a tenth of the word pieces belong to a mention.
So the last layer runs, after its self-attention, only at those word pieces (``bert_layer.py`` says how, and
why that is bit-identical); every other word's vector is then zero where upstream's is not, and each of
those is multiplied by zero (its ``matrix`` weight) before it reaches a mention. The small model's coref
BERT has 2 layers, so this removes about a third of its matrix work. The layers before the last skip the
batch's padding in all but the attention itself.
"""

from __future__ import annotations

from typing import Any

import torch

from booknlp_api.engine.bert_layer import MIN_ROWS, least_rows, read_rows, read_rows_only, rows_independent
from booknlp_api.models.bert import import_upstream


def applies(model: Any) -> bool:
    """Whether this replacement gives ``model``'s (a ``BERTCorefTagger``) representations exactly on this machine."""
    return rows_independent(model.bert)


class MentionReps:
    """A drop-in ``get_mention_reps`` for one ``BERTCorefTagger`` instance (or any module with what it reads)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.upstream = import_upstream("booknlp.english.bert_coref_quote_pronouns").BERTCorefTagger.get_mention_reps

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        input_ids, mask, matrix, transforms = (kwargs.get(name) for name in
                                               ("input_ids", "attention_mask", "matrix", "transforms"))
        if args or self.model.training or input_ids is None or mask is None or matrix is None or transforms is None \
                or input_ids.numel() < MIN_ROWS:
            return self.upstream(self.model, *args, **kwargs)
        words = (matrix != 0).any(dim=1)  # (sequences, words): words inside some mention
        pieces = ((transforms != 0) & words[:, :, None]).any(dim=1)  # (sequences, word pieces) they average
        rows = read_rows(pieces, least_rows(input_ids.shape[0]))
        with read_rows_only(self.model.bert, mask, rows):
            return self.upstream(self.model, *args, **kwargs)
