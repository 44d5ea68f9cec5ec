"""Speaker attribution's scoring (``BERTSpeakerID.forward`` over a book's batches) done ahead: shared over forked
processes, and in fast mode over windows regrouped by length.

Upstream's ``QuotationAttribution.tag`` builds every batch of quote windows (``get_batches``), then scores the
batches one by one in its loop. While inside ``scores_shared``, building the batches also scores all of them,
shared by cost over this process and forked children each on one torch thread (``forked_batches.py``: a
second torch thread leaves part of the second core idle), and the loop's ``forward`` calls take those scores
in order. Each batch is scored by the same modules on the same tensors, and on the machines measured a batch's
bits do not depend on the thread count; fast mode only, as the tagger's sharing (docs/PERFORMANCE.md). With
``by_length`` the batches scored are the windows regrouped by length (``speaker_windows_by_length.py``), and
each window's scores are handed back in upstream's batches.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from typing import Any

import torch

from booknlp_api.engine.forked_batches import run_batches
from booknlp_api.engine.speaker_windows_by_length import regroup

_SEAMS = ("get_batches", "forward")
LEAST_WINDOWS_SHARED = 128
"""Fewer quote windows than this (four full batches) are scored in this process: forking a loaded worker costs
more than a second process saves on a short text (the first 1,000 words of *Pride and Prejudice*, 37 windows in
two batches: attribution 0.71 s in one process, 0.77 s shared; *The Call of the Wild*, 148 windows: 1.60 s in
one, 1.37 s shared)."""


@contextlib.contextmanager
def scores_shared(model: Any, processes: int, by_length: bool = False) -> Iterator[None]:
    """While inside, ``model`` (a ``BERTSpeakerID``) scores each book's batches over up to ``processes``
    processes as soon as they are built, regrouped by window length if ``by_length``; ``processes`` < 2 and
    not ``by_length``: unchanged."""
    if processes < 2 and not by_length:
        yield
        return
    own = {name: vars(model).get(name) for name in _SEAMS}  # instance attributes shadowing upstream's methods
    build, score = model.get_batches, model.forward
    ready: deque[tuple[Any, torch.Tensor]] = deque()

    def get_batches(*args: Any, **kwargs: Any) -> Any:
        batches = build(*args, **kwargs)
        inputs, matrices = batches[0], batches[1]
        if not inputs:
            return batches
        windows = sum(int(batch["toks"].shape[0]) for batch in inputs)
        sharing = processes if windows >= LEAST_WINDOWS_SHARED else 1
        grouped = regroup(inputs, matrices) if by_length else None
        scored_inputs, scored_matrices = (grouped.inputs, grouped.matrices) if grouped else (inputs, matrices)
        costs = [int(batch["toks"].numel()) for batch in scored_inputs]
        scores = list(run_batches(lambda b: score(scored_inputs[b], scored_matrices[b]), costs, sharing))
        ready.extend(zip(inputs, grouped.scatter(scores) if grouped else scores, strict=True))
        return batches

    def forward(batch_x: Any, batch_m: Any) -> torch.Tensor:
        built_for, scores = ready.popleft()
        if built_for is not batch_x:
            raise RuntimeError("speaker batches scored out of order")
        return scores

    model.get_batches, model.forward = get_batches, forward
    try:
        yield
    finally:
        for name, method in own.items():
            if method is None:
                delattr(model, name)
            else:
                setattr(model, name, method)
