"""Replaces ``BERTSpeakerID.get_batches`` (speaker attribution's batch building) with array operations.

Upstream tokenizes every word of every quote window twice (once for the ids, once for the word
piece positions) and fills the candidate and quote matrices one cell at a time in Python. Here each
distinct word's ids are computed once, positions come from a running sum, and each matrix row is
one slice assignment. The values are upstream's exactly: ``1./n`` in double precision, rounded to
float32 the way ``torch.FloatTensor(np.array(...))`` rounds it, zeros elsewhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from booknlp_api.models.bert import import_upstream

PSEUDO_TOKENS = frozenset({"[ALTQUOTE]", "[PAR]", "[QUOTE]"})
CANDIDATES = 10
"""Rows of the candidate matrix: upstream considers the 10 candidates nearest the quote."""


def convert_word(word: str) -> str:
    """Upstream's lower-casing with a ``[CAP]`` marker (``doLowerCase=True``)."""
    if word in PSEUDO_TOKENS:
        return word
    if word[0].lower() != word[0]:
        return "[CAP] " + word.lower()
    return word.lower()


class SpeakerBatches:
    """A drop-in ``get_batches`` for one ``BERTSpeakerID`` instance."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.upstream = type(model).get_batches.__get__(model)
        self.word_ids: dict[str, tuple[int, ...]] = {}
        tokenizer = model.tokenizer
        self.cls = tokenizer.convert_tokens_to_ids("[CLS]")
        self.sep = tokenizer.convert_tokens_to_ids("[SEP]")

    def ids(self, word: str) -> tuple[int, ...]:
        found = self.word_ids.get(word)
        if found is None:
            tokenizer = self.model.tokenizer
            found = self.word_ids[word] = tuple(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(convert_word(word))))
        return found

    def __call__(self, all_x: list[list[str]], all_m: list[Any], batch_size: int = 32,
                 doLowerCase: bool = True) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        if not doLowerCase:
            return self.upstream(all_x, all_m, batch_size=batch_size, doLowerCase=doLowerCase)
        device = import_upstream("booknlp.english.speaker_attribution").device
        batches_x, batches_m, batches_y, batches_o = [], [], [], []
        for i in range(0, len(all_x), batch_size):
            xb, mb = all_x[i:i + batch_size], all_m[i:i + batch_size]
            toks, mask, spans = self._inputs(xb)
            cands, quote, y, eids, quote_eids = self._matrices(mb, spans, toks.shape[1])
            batches_o.append((xb, mb))
            batches_x.append({"toks": torch.from_numpy(toks).to(device), "mask": torch.from_numpy(mask).to(device)})
            # "candidates" (each window's real candidates) is ours: upstream's forward reads the two matrices only
            batches_m.append({"cands": torch.from_numpy(cands).to(device), "quote": torch.from_numpy(quote).to(device),
                              "candidates": torch.tensor([min(len(m[1]), CANDIDATES) for m in mb], device=device)})
            batches_y.append({"y": torch.LongTensor(y).to(device), "eid": eids, "quote_eids": quote_eids})
        return batches_x, batches_m, batches_y, batches_o

    def _inputs(self, xb: list[list[str]]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Padded ids and mask, and each word's first word piece position (plus one past the end)."""
        pieces = [[self.ids(word) for word in sent] for sent in xb]
        # positions start at 1, after [CLS]
        spans = [np.cumsum([1] + [len(p) for p in sent]) for sent in pieces]
        max_len = max(int(span[-1]) + 1 for span in spans)
        toks = np.zeros((len(xb), max_len), dtype=np.int64)
        mask = np.zeros((len(xb), max_len), dtype=np.int64)
        for j, sent in enumerate(pieces):
            row = [self.cls, *(piece for word in sent for piece in word), self.sep]
            toks[j, :len(row)] = row
            mask[j, :len(row)] = 1
        return toks, mask, spans

    @staticmethod
    def _matrices(mb: list[Any], spans: list[np.ndarray], max_len: int) -> tuple[Any, ...]:
        cands = np.zeros((len(mb), CANDIDATES, max_len), dtype=np.float32)
        quote = np.zeros((len(mb), CANDIDATES, max_len), dtype=np.float32)
        ys, eids, quote_eids = [], [], []
        for j, (eid, candidates, quote_index) in enumerate(mb):
            # numpy indexes like upstream's list of (start, end) pairs, negative indexes included
            begins, ends = spans[j][:-1], spans[j][1:]
            _fill(quote[j], slice(None), int(begins[quote_index]), int(ends[quote_index]))
            y, cand_eids = [], []
            for c_idx, (start, end, truth, cand_eid) in enumerate(candidates):
                _fill(cands[j], c_idx, int(begins[start]), int(ends[end - 1]))
                y.append(truth)
                cand_eids.append(cand_eid)
            ys.append(y + [0] * (CANDIDATES - len(y)))
            eids.append(cand_eids + [None] * (CANDIDATES - len(cand_eids)))
            quote_eids.append(eid)
        return cands, quote, ys, eids, quote_eids


def _fill(matrix: np.ndarray, rows: Any, start: int, end: int) -> None:
    if end > start:
        matrix[rows, start:end] = 1. / (end - start)
