"""Fast mode's speaker scores: the speaker BERT in int8, float32 again wherever the decision is close.

Attribution is the speaker BERT run once per quote window, and it is what dialogue-heavy books spend most
on. Dynamic int8 of that BERT runs it 1.7-2x faster on the CPU but moves each candidate's score by up to
~0.011 (measured on our random-weight models), and on those models the two best candidates of one quote in
seven lie closer than that: int8 alone changed 1-3% of quote speakers. Upstream takes the best of a quote's
real candidates (``BERTSpeakerID``'s scores are read only through that argmax), so a quote whose two best
candidates are at least ``margin`` apart in int8 keeps its decision when every score moves by less than half
of it; every other quote of the batch is scored again with the float32 model, as exact mode scores it.

A fast-mode candidate, not shipped: on the random-weight models a third of the quotes are rechecked, which
leaves attribution only ~1.07x faster (docs/PERFORMANCE.md, "Round 6").
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import torch

from booknlp_api.engine import speaker_forward

Scores = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]

RECHECK_MARGIN = 0.03
"""Quotes whose best two int8 candidate scores are closer than this are scored again in float32: about 2.7
times the largest int8 error seen on the benchmark novels (0.011), i.e. a safety factor of ~1.4 on each score."""


def quantized_scores(model: Any) -> Scores:
    """``model``'s (a ``BERTSpeakerID``) scoring with an int8 copy of its BERT; the model itself is untouched.

    The copy shares the model's embeddings and LayerNorms (int8 changes linear layers only), and each linear
    layer is quantised from the model's own, so loading holds no second float32 BERT even for a moment.
    """
    linears = [module for module in model.bert.modules() if type(module) is torch.nn.Linear]
    shared = {id(module): module for module in [*linears, model.bert.embeddings]}
    bert = copy.deepcopy(model.bert, memo=shared)
    for parent in list(bert.modules()):
        for name, child in parent.named_children():
            if type(child) is torch.nn.Linear:
                setattr(parent, name, _int8(child))
    int8 = SimpleNamespace(bert=bert, fc=model.fc, tanh=model.tanh, fc2=model.fc2, training=False)
    return speaker_forward.SpeakerForward(int8)


@contextlib.contextmanager
def int8_quietly() -> Iterator[None]:
    """torch's notices that eager-mode int8 moves to torchao are not the user's concern, and would reach the
    worker's terminal and logs at every fast-mode load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*(quantiz|torchao)")
        yield


def _int8(linear: torch.nn.Linear) -> torch.nn.Module:
    """What ``quantize_dynamic(..., {Linear}, dtype=qint8)`` puts in ``linear``'s place."""
    linear.qconfig = torch.ao.quantization.default_dynamic_qconfig  # read by from_float, removed after
    try:
        with int8_quietly():
            return torch.ao.nn.quantized.dynamic.Linear.from_float(linear)
    finally:
        del linear.qconfig


def close_quotes(scores: torch.Tensor, candidates: torch.Tensor, margin: float) -> torch.Tensor:
    """Which windows' best two real candidates (the first ``candidates[i]`` rows of ``scores[i]``, a
    ``(batch, 10, 1)`` tensor) are less than ``margin`` apart; a window of one candidate has no decision."""
    rows = torch.arange(scores.shape[1], device=scores.device)
    real = rows[None, :] < candidates[:, None]
    masked = scores.squeeze(2).masked_fill(~real, float("-inf"))
    best = masked.topk(2, dim=1).values
    return (candidates > 1) & (best[:, 0] - best[:, 1] < margin)


class RecheckedSpeakerForward:
    """A drop-in ``forward`` for one ``BERTSpeakerID``: int8 scores, float32 ones for close decisions."""

    def __init__(self, model: Any, exact: Scores, margin: float = RECHECK_MARGIN) -> None:
        self.model = model
        self.exact = exact
        self.int8 = quantized_scores(model)
        self.margin = margin
        self.bert = self.int8.model.bert
        """The BERT every batch goes through once (progress counts its calls; rechecks are not batches)."""
        self.windows = self.rechecked = 0
        """Counts over this instance's life, for benchmarks: windows scored, and scored again in float32."""

    def __call__(self, batch_x: dict[str, torch.Tensor], batch_m: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.model.training or "candidates" not in batch_m:
            return self.exact(batch_x, batch_m)
        scores = self.int8(batch_x, batch_m)
        close = torch.nonzero(close_quotes(scores, batch_m["candidates"], self.margin)).squeeze(1)
        self.windows += scores.shape[0]
        self.rechecked += len(close)
        if len(close):
            # the close windows alone, without the padding only the batch's longer windows needed
            length = int(batch_x["mask"][close].sum(dim=1).max())
            again_x = {key: value[close, :length] for key, value in batch_x.items()}
            again_m = {key: batch_m[key][close, :, :length] for key in ("cands", "quote")}
            scores[close] = self.exact(again_x, again_m)
        return scores
