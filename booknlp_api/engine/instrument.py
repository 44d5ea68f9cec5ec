"""Seams attached to upstream component instances (never to upstream's code).

* a forward pre-hook on each BERT counts batches, for progress and cancellation between batches;
* thin wrappers on the one method per component that knows how many batches a run will take;
* the tagger's event output is cut at the sentence end: upstream lets the event head fire on the
  ``[SEP]`` position, and then raises ``IndexError`` (a crash we turn into "no event there").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from booknlp_api.engine.progress import RunTracker
from booknlp_api.engine.speaker_int8 import RecheckedSpeakerForward


class TrackerSlot:
    """Points at the tracker of the run in progress (one run at a time per service)."""

    tracker: RunTracker | None = None

    def batch(self, *_: object) -> None:
        if self.tracker is not None:
            self.tracker.batch()

    def expect(self, count: int) -> None:
        if self.tracker is not None:
            self.tracker.expect_batches(count)


def instrument(component: str, built: Any, slot: TrackerSlot) -> None:
    model = built.model
    # fast mode's int8 attribution runs each batch through its int8 BERT once, rechecks through this one
    rechecked = isinstance(model.forward, RecheckedSpeakerForward)
    (model.forward.bert if rechecked else model.bert).register_forward_pre_hook(slot.batch)
    if component == "entity":
        model.tag_all = _tag_all_within_sentences(model.tag_all, slot)
    elif component == "quote":
        model.get_batches = _counting(model.get_batches, slot, lambda out: len(out[0]))
    elif component == "coref":
        model.get_data = _counting(model.get_data, slot, lambda out: len(out[0]))


def _counting(method: Callable[..., Any], slot: TrackerSlot, count: Callable[[Any], int]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = method(*args, **kwargs)
        slot.expect(count(out))
        return out

    return wrapper


def _tag_all_within_sentences(tag_all: Callable[..., Any], slot: TrackerSlot) -> Callable[..., Any]:
    def wrapper(batched_wn: Any, batched_sents: Any, batched_data: Any, batched_mask: Any,
                batched_transforms: Any, batched_orig_token_lens: Any, ordering: Any, **kwargs: Any) -> Any:
        slot.expect(len(batched_data))
        preds, events, supersenses = tag_all(batched_wn, batched_sents, batched_data, batched_mask,
                                             batched_transforms, batched_orig_token_lens, ordering, **kwargs)
        if events is not None:
            # orig_token_lens counts [CLS] and [SEP]; real tokens are positions 0 .. len-3.
            lengths = [int(n) - 2 for lens in batched_orig_token_lens for n in lens]
            in_order = [0] * len(ordering)
            for position, sentence in enumerate(ordering):
                in_order[sentence] = lengths[position]
            events = [{col: flag for col, flag in found.items() if col < in_order[i]}
                      for i, found in enumerate(events)]
        return preds, events, supersenses

    return wrapper
