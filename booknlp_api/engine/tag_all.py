"""``Tagger.tag_all`` with table-driven span extraction and vectorised events, byte-identical to upstream.

Upstream extracts spans by looking up and splitting tag names token by token, and reads each event
logit pair with a separate ``np.argmax`` on a torch row. Here spans come from the ``TagTable`` arrays
(a ``B-X`` extends over the ``I-X`` tags right after it) and events from one ``argmax`` per batch;
dictionaries are filled in upstream's order (layer 1, 2, 3; ascending start), which the output files keep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from booknlp_api.engine.forked_batches import run_batches
from booknlp_api.engine.get_layer_transformation import Ints, TagTable
from booknlp_api.engine.predict_all import Predictions, predict_all

Span = tuple[int, str, int, int]


def get_spans(table: TagTable, doc_idx: int, tags: Ints, length: int) -> list[Span]:
    """Upstream's ``Tagger.get_spans`` keys, in its order: ``(doc_idx, label, start, end)`` for each ``B-X``."""
    tags = tags[:max(length - 2, 0)]
    starts = np.flatnonzero(table.begins[tags])
    if len(starts) == 0:
        return []
    labels = table.label[tags]
    links = table.inside[tags[1:]] & (labels[1:] == labels[:-1])
    breaks = np.append(np.flatnonzero(~links) + 1, len(tags))
    ends = breaks[np.searchsorted(breaks, starts + 1)]
    names = table.names
    return [(doc_idx, names[label], start, end)
            for label, start, end in zip(labels[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)]


def _in_order(found: list[Any], ordering: Ints) -> list[Any]:
    out: list[Any] = [None] * len(ordering)
    for position, sentence in enumerate(ordering):
        out[sentence] = found[position]
    return out


def _events(logits: torch.Tensor, width: int, lens: list[int]) -> list[dict[int, int]]:
    # np.argmax over each (no-event, event) pair, as upstream (ties and all), for a whole batch at once
    fired = np.argmax(logits.cpu().numpy().reshape(-1, width - 1, 2), axis=2) == 1
    return [{col: 1 for col in np.flatnonzero(fired[row, :max(n - 1, 0)]).tolist()} for row, n in enumerate(lens)]


def tag_tables(tagger: Any) -> tuple[TagTable, TagTable]:
    """The entity and supersense tables of one upstream ``Tagger``."""
    return (TagTable.build(tagger.tagset, tagger.rev_tagset),
            TagTable.build(tagger.supersense_tagset, tagger.rev_supersense_tagset))


def make_tag_all(tagger: Any) -> Callable[..., tuple[Any, Any, Any]]:
    """Our ``tag_all`` for one upstream ``Tagger`` instance (its tagsets read once into tables)."""
    entity, supersense = tag_tables(tagger)

    def tag_all(batched_wn: list[torch.Tensor], batched_sents: Any, batched_data: list[torch.Tensor],
                batched_mask: list[torch.Tensor], batched_transforms: list[torch.Tensor],
                batched_orig_token_lens: list[torch.Tensor], ordering: Ints, doEvent: bool = True,
                doEntities: bool = True, doSS: bool = True, processes: int = 1) -> tuple[Any, Any, Any]:
        """Upstream's ``tag_all``; ``processes`` > 1 shares the batches over that many processes
        (``forked_batches.py``: the same predictions, sooner on a CPU with cores to spare)."""
        preds: list[dict[Span, int]] = []
        supersense_preds: list[dict[Span, int]] = []
        events: list[dict[int, int]] = []

        def compute(b: int) -> Predictions:
            return predict_all(tagger, (entity, supersense), batched_wn[b], batched_data[b], batched_mask[b],
                               batched_transforms[b], batched_orig_token_lens[b], doEvent, doEntities, doSS)

        with torch.inference_mode():
            costs = [int(data.numel()) for data in batched_data]
            for b, found in enumerate(run_batches(compute, costs, processes)):
                lens = batched_orig_token_lens[b].tolist()
                if found.entity_layers is not None:
                    for d, n in enumerate(lens):
                        spans = {span: 1 for layer in found.entity_layers
                                 for span in get_spans(entity, len(preds), layer[d], n)}
                        preds.append(spans)
                if found.supersenses is not None:
                    for d, n in enumerate(lens):
                        supersense_preds.append(
                            dict.fromkeys(get_spans(supersense, len(supersense_preds), found.supersenses[d], n), 1))
                if found.event_logits is not None:
                    events.extend(_events(found.event_logits, batched_wn[b].shape[1], lens))
        return (_in_order(preds, ordering) if doEntities else None,
                _in_order(events, ordering) if doEvent else None,
                _in_order(supersense_preds, ordering) if doSS else None)

    return tag_all
