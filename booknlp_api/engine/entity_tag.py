"""``LitBankEntityTagger.tag`` with our batch building, byte-identical to upstream's.

Same chunking as upstream (sentences packed into chunks under 500 word pieces), but each distinct word
is run through the slow Python WordPiece tokenizer once per book instead of once per occurrence, the
batches come from ``engine/get_batches.py``, the WordNet first-sense ids are built as arrays per batch,
and ``tag_all`` is whatever is installed on the tagger (ours, possibly wrapped by ``instrument``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from booknlp_api.engine.get_batches import Batches, get_batches

MAX_PIECES = 500
BATCH_SIZE = 32


def chunk(toks: Sequence[Any], tokenize: Callable[[str], list[str]]) -> tuple[list[list[list[str]]], list[list[Any]]]:
    """Upstream's chunks: word pieces per token with ``[CLS]``/``[SEP]``, and the tokens of each chunk."""
    pieces: dict[str, list[str]] = {}
    sents, o_sents, sent, o_sent = [], [], [], []
    last_sid, length = None, 0
    for tok in toks:
        word = tok.text
        # uncased BERT: upstream marks capitalised words with [CAP]
        if word[0].lower() != word[0]:
            word = "[CAP] " + word.lower()
        found = pieces.get(word)
        if found is None:
            found = pieces[word] = tokenize(word)
        if last_sid is not None and (tok.sentence_id != last_sid or length + len(found) > MAX_PIECES):
            sents.append(sent)
            o_sents.append(o_sent)
            sent, o_sent, length = [], [], 0
        sent.append(found)
        o_sent.append(tok)
        last_sid = tok.sentence_id
        length += len(found)
    sents.append(sent)
    o_sents.append(o_sent)

    sentences, o_sentences = [], []
    sentence: list[list[str]] = [["[CLS]"]]
    o_sent, cur_length = [], 0
    for idx, group in enumerate(sents):
        group_len = sum(len(found) for found in group)
        if group_len + cur_length >= MAX_PIECES:
            sentence.append(["[SEP]"])
            sentences.append(sentence)
            o_sentences.append(o_sent)
            sentence, o_sent, cur_length = [["[CLS]"]], [], 0
        cur_length += group_len
        sentence.extend(group)
        o_sent.extend(o_sents[idx])
    if len(sentence) > 1:
        sentence.append(["[SEP]"])
        o_sentences.append(o_sent)
        sentences.append(sentence)
    return sentences, o_sentences


def wordnet_batches(wns: dict[str, int], o_sentences: list[list[Any]], batches: Batches) -> list[torch.Tensor]:
    """Upstream's ``get_wn``: per batch, each chunk's first-sense ids (1 when unknown), 0 for [CLS]/[SEP]/padding."""
    senses = []
    for tokens in o_sentences:
        ids = np.zeros(len(tokens) + 2, np.int64)
        for position, tok in enumerate(tokens, start=1):
            pos = {"NOUN": "n", "VERB": "v"}.get(tok.pos, tok.pos)
            ids[position] = wns.get(f"{tok.text.split(' ')[-1].lower()}.{pos}", 1)
        senses.append(ids)
    out, start = [], 0
    for lens in batches.orig_token_lens:
        members = batches.ordering[start:start + len(lens)]
        start += len(lens)
        matrix = np.zeros((len(members), max(len(senses[m]) for m in members)), np.int64)
        for row, m in enumerate(members):
            matrix[row, :len(senses[m])] = senses[m]
        out.append(torch.from_numpy(matrix))
    return out


def _spans(found: list[dict[Any, int]], o_sentences: list[list[Any]]) -> list[tuple[int, int, str, str]]:
    out = []
    for idx, preds in enumerate(found):
        for _, label, start, end in preds:
            start_token = o_sentences[idx][start].token_id
            end_token = int(o_sentences[idx][end - 1].token_id)
            phrase = " ".join([x.text for x in o_sentences[idx][start:end]])
            out.append((start_token, start_token if end_token == -2 else end_token, label, phrase))
    return out


def make_tag(entity_tagger: Any) -> Callable[..., dict[str, Any]]:
    """Our ``tag`` for one upstream ``LitBankEntityTagger`` instance."""

    def tag(toks: Sequence[Any], doEvent: bool = True, doEntities: bool = True,
            doSS: bool = True, processes: int = 1) -> dict[str, Any]:
        model = entity_tagger.model
        sentences, o_sentences = chunk(toks, model.tokenizer.tokenize)
        batches = get_batches(model.tokenizer.convert_tokens_to_ids, sentences, BATCH_SIZE)
        wn = wordnet_batches(entity_tagger.wns, o_sentences, batches)
        preds, events_in_order, supersenses = model.tag_all(
            wn, batches.sents, batches.data, batches.mask, batches.transforms, batches.orig_token_lens,
            batches.ordering, doEvent=doEvent, doEntities=doEntities, doSS=doSS, processes=processes)
        out: dict[str, Any] = {}
        if doEntities:
            out["entities"] = _spans(preds, o_sentences)
        if doSS:
            out["supersense"] = _spans(supersenses, o_sentences)
        if doEvent:
            events = {}
            for idx, found in enumerate(events_in_order):
                for start in found:
                    events[o_sentences[idx][start].token_id] = 1
                out["events"] = events
        return out

    return tag
