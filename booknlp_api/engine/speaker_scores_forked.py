"""Speaker attribution's scoring (``BERTSpeakerID.forward`` over a book's batches) shared over forked processes.

Upstream's ``QuotationAttribution.tag`` builds every batch of quote windows (``get_batches``), then scores the
batches one by one in its loop. While inside ``scores_shared``, building the batches also scores all of them,
shared by cost over this process and forked children each on one torch thread (``forked_batches.py``: a
second torch thread leaves part of the second core idle), and the loop's ``forward`` calls take those scores
in order. Each batch is scored by the same modules on the same tensors, and on the machines measured a batch's
bits do not depend on the thread count; fast mode only, as the tagger's sharing (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from typing import Any

import torch

from booknlp_api.engine.forked_batches import run_batches

_SEAMS = ("get_batches", "forward")


@contextlib.contextmanager
def scores_shared(model: Any, processes: int) -> Iterator[None]:
    """While inside, ``model`` (a ``BERTSpeakerID``) scores each book's batches over up to ``processes``
    processes as soon as they are built; ``processes`` < 2: unchanged."""
    if processes < 2:
        yield
        return
    own = {name: vars(model).get(name) for name in _SEAMS}  # instance attributes shadowing upstream's methods
    build, score = model.get_batches, model.forward
    ready: deque[tuple[Any, torch.Tensor]] = deque()

    def get_batches(*args: Any, **kwargs: Any) -> Any:
        batches = build(*args, **kwargs)
        inputs, matrices = batches[0], batches[1]
        costs = [int(batch["toks"].numel()) for batch in inputs]
        ready.extend(zip(inputs, run_batches(lambda b: score(inputs[b], matrices[b]), costs, processes),
                         strict=True))
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
