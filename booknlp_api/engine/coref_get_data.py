"""Replaces ``BERTCorefTagger.get_data`` (coref's batch building) with array operations.

Upstream builds each sentence's word-to-piece transform as Python lists of ``np.float64`` (a
500 x 500 list of lists per sentence), pads them cell by cell and converts the lot to a tensor;
it also tokenizes every word again. Here each distinct word's ids are computed once and each
batch's tensors are filled with a few numpy operations. Values are upstream's exactly: ``1./n``
in double precision rounded to float32 as ``torch.FloatTensor(np.array(...))`` rounds it; the
batch shapes (including upstream's quirks: the first batch's minimum of one word and one entity,
``ent_spans`` holding only the last partial batch) are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


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
        out: dict[str, list[Any]] = {key: [] for key in (
            "matrix", "index", "starts", "ends", "widths", "data", "masks", "transforms", "quotes")}
        token_positions = [idx for idx, sent_ents in enumerate(ents) for _ in sent_ents]
        ent_spans: list[int] = []
        for b, first in enumerate(range(0, len(doc), batchsize)):
            sents, batch_ents = doc[first:first + batchsize], ents[first:first + batchsize]
            # upstream starts its running maxima at 1 for the first batch and at 0 after it
            words = max([len(sent) for sent in sents] + [1 if b == 0 else 0])
            most_ents = max([len(sent_ents) for sent_ents in batch_ents] + [1 if b == 0 else 0])
            self._mentions(out, batch_ents, words, most_ents)
            self._pieces(out, sents, words)
            # upstream keeps only the spans of a last, partial batch
            ent_spans = [e.end - e.start for sent_ents in batch_ents for e in sent_ents] \
                if len(batch_ents) < batchsize else []
        return (out["matrix"], out["index"], token_positions, ent_spans, out["starts"], out["ends"], out["widths"],
                out["data"], out["masks"], out["transforms"], out["quotes"])

    def _mentions(self, out: dict[str, list[Any]], batch_ents: list[list[Any]], words: int, most_ents: int) -> None:
        matrix = np.zeros((len(batch_ents), most_ents, words), dtype=np.float32)
        index, quotes, starts, ends, widths = [], [], [], [], []
        for j, sent_ents in enumerate(batch_ents):
            for i, entity in enumerate(sent_ents):
                matrix[j, i, entity.start:entity.end + 1] = 1
                index.append(j * most_ents + i)
                quotes.append(entity.in_quote)
                starts.append(j * words + entity.start)
                ends.append(j * words + entity.end)
                widths.append(self.model.get_mention_width_bucket(entity.end - entity.start))
        out["matrix"].append(torch.from_numpy(matrix))
        out["index"].append(torch.LongTensor(index))
        out["quotes"].append(torch.LongTensor(quotes))
        out["starts"].append(torch.LongTensor(starts))
        out["ends"].append(torch.LongTensor(ends))
        out["widths"].append(torch.LongTensor(widths))

    def _pieces(self, out: dict[str, list[Any]], sents: list[list[str]], words: int) -> None:
        pieces = [[self.ids(word) for word in sent] for sent in sents]
        counts = [np.fromiter((len(p) for p in sent), dtype=np.int64, count=len(sent)) for sent in pieces]
        max_len = max(int(c.sum()) for c in counts)
        data = np.zeros((len(sents), max_len), dtype=np.int64)
        masks = np.zeros((len(sents), max_len), dtype=np.float32)
        transforms = np.zeros((len(sents), words, max_len), dtype=np.float32)
        for j, sent in enumerate(pieces):
            flat = [piece for word in sent for piece in word]
            data[j, :len(flat)] = flat
            masks[j, :len(flat)] = 1
            # row w holds 1/len(pieces of w) over w's pieces (words without pieces keep a zero row)
            rows = np.repeat(np.arange(len(sent)), counts[j])
            share = np.repeat(1. / np.maximum(counts[j], 1), counts[j])
            transforms[j, rows, np.arange(len(flat))] = share
        out["data"].append(torch.from_numpy(data))
        out["masks"].append(torch.from_numpy(masks))
        out["transforms"].append(torch.from_numpy(transforms))
