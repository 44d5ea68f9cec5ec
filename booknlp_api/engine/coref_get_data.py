"""Replaces ``BERTCorefTagger.get_data`` (coref's batch building) with array operations, built lazily.

Upstream builds each sentence's word-to-piece transform as Python lists of ``np.float64`` (a
500 x 500 list of lists per sentence), pads them cell by cell and converts the lot to a tensor;
it also tokenizes every word again. Here each distinct word's ids are computed once and each
batch's tensors are filled with a few numpy operations. Values are upstream's exactly: ``1./n``
in double precision rounded to float32 as ``torch.FloatTensor(np.array(...))`` rounds it; the
batch shapes (including upstream's quirks: the first batch's minimum of one word and one entity,
``ent_spans`` holding only the last partial batch) are kept.

The large per-batch tensors (mention matrix, word-piece ids, masks, transforms: ~3 KB per token of
the book, all alive at once upstream) are ``LazyBatches`` (``engine/lazy_batches.py``): upstream's
``forward`` reads them one batch at a time, in order, so each batch is built when read and dropped
after. The small per-mention index tensors stay lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from booknlp_api.engine.lazy_batches import LazyBatches

_LARGE = ("matrix", "data", "masks", "transforms")
"""The tensors built on demand, one batch at a time."""


class _Batch:
    """What one batch is built from: its sentences, their entities, and the batch's padded sizes."""

    def __init__(self, sents: list[list[str]], ents: list[list[Any]], words: int, most_ents: int) -> None:
        self.sents, self.ents, self.words, self.most_ents = sents, ents, words, most_ents


class _LastBatch:
    """One ``get_data`` call's batches, and the large tensors of the one read last (``forward`` reads four
    tensors of a batch in a row); it lives as long as the call's output does."""

    def __init__(self, batches: list[_Batch], build: Callable[[_Batch], dict[str, torch.Tensor]]) -> None:
        self.batches = batches
        self._build = build
        self._number = -1
        self._tensors: dict[str, torch.Tensor] = {}

    def reader(self, key: str) -> Callable[[int], torch.Tensor]:
        def read(b: int) -> torch.Tensor:
            if b != self._number:
                self._tensors = {}  # drop the previous batch before building the next
                self._tensors, self._number = self._build(self.batches[b]), b
            return self._tensors[key]

        return read


class CorefData:
    """A drop-in ``get_data`` for one ``BERTCorefTagger`` instance."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.word_ids: dict[str, tuple[int, ...]] = {}

    def ids(self, word: str) -> tuple[int, ...]:
        found = self.word_ids.get(word)
        if found is None:
            tokenizer = self.model.tokenizer
            found = self.word_ids[word] = tuple(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)))
        return found

    def __call__(self, doc: list[list[str]], ents: list[list[Any]], max_ents: int, max_words: int,
                 batchsize: int = 128) -> tuple[Any, ...]:
        out: dict[str, list[Any]] = {key: [] for key in ("index", "starts", "ends", "widths", "quotes")}
        token_positions = [idx for idx, sent_ents in enumerate(ents) for _ in sent_ents]
        ent_spans: list[int] = []
        batches: list[_Batch] = []
        for b, first in enumerate(range(0, len(doc), batchsize)):
            sents, batch_ents = doc[first:first + batchsize], ents[first:first + batchsize]
            # upstream starts its running maxima at 1 for the first batch and at 0 after it
            words = max([len(sent) for sent in sents] + [1 if b == 0 else 0])
            most_ents = max([len(sent_ents) for sent_ents in batch_ents] + [1 if b == 0 else 0])
            batches.append(_Batch(sents, batch_ents, words, most_ents))
            self._positions(out, batch_ents, words, most_ents)
            # upstream keeps only the spans of a last, partial batch
            ent_spans = [e.end - e.start for sent_ents in batch_ents for e in sent_ents] \
                if len(batch_ents) < batchsize else []
        last = _LastBatch(batches, self._large)
        large = {key: LazyBatches(len(batches), last.reader(key)) for key in _LARGE}
        return (large["matrix"], out["index"], token_positions, ent_spans, out["starts"], out["ends"], out["widths"],
                large["data"], large["masks"], large["transforms"], out["quotes"])

    def _positions(self, out: dict[str, list[Any]], batch_ents: list[list[Any]], words: int, most_ents: int) -> None:
        index, quotes, starts, ends, widths = [], [], [], [], []
        for j, sent_ents in enumerate(batch_ents):
            for i, entity in enumerate(sent_ents):
                index.append(j * most_ents + i)
                quotes.append(entity.in_quote)
                starts.append(j * words + entity.start)
                ends.append(j * words + entity.end)
                widths.append(self.model.get_mention_width_bucket(entity.end - entity.start))
        out["index"].append(torch.LongTensor(index))
        out["quotes"].append(torch.LongTensor(quotes))
        out["starts"].append(torch.LongTensor(starts))
        out["ends"].append(torch.LongTensor(ends))
        out["widths"].append(torch.LongTensor(widths))

    def _large(self, batch: _Batch) -> dict[str, torch.Tensor]:
        matrix = np.zeros((len(batch.ents), batch.most_ents, batch.words), dtype=np.float32)
        for j, sent_ents in enumerate(batch.ents):
            for i, entity in enumerate(sent_ents):
                matrix[j, i, entity.start:entity.end + 1] = 1
        pieces = [[self.ids(word) for word in sent] for sent in batch.sents]
        counts = [np.fromiter((len(p) for p in sent), dtype=np.int64, count=len(sent)) for sent in pieces]
        max_len = max(int(c.sum()) for c in counts)
        data = np.zeros((len(batch.sents), max_len), dtype=np.int64)
        masks = np.zeros((len(batch.sents), max_len), dtype=np.float32)
        transforms = np.zeros((len(batch.sents), batch.words, max_len), dtype=np.float32)
        for j, sent in enumerate(pieces):
            flat = [piece for word in sent for piece in word]
            data[j, :len(flat)] = flat
            masks[j, :len(flat)] = 1
            # row w holds 1/len(pieces of w) over w's pieces (words without pieces keep a zero row)
            rows = np.repeat(np.arange(len(sent)), counts[j])
            share = np.repeat(1. / np.maximum(counts[j], 1), counts[j])
            transforms[j, rows, np.arange(len(flat))] = share
        return {"matrix": torch.from_numpy(matrix), "data": torch.from_numpy(data),
                "masks": torch.from_numpy(masks), "transforms": torch.from_numpy(transforms)}
