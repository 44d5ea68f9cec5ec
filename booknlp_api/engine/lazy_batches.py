"""Per-batch tensors built when a batch is read instead of all at once, for a book's memory to stay bounded.

Upstream builds every batch's large tensors (word-piece averaging matrices, mention matrices) for the
whole book before the first BERT call, then reads them one batch at a time, in order. A ``LazyBatches``
is the same sequence (same length, same tensor at each index) whose items are built on each read and
dropped after, so a book holds one batch's tensors at a time instead of ~2-3 KB per token of all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch


class LazyBatches(Sequence[torch.Tensor]):
    """``count`` tensors, the ``b``-th built by ``build(b)`` each time it is read."""

    def __init__(self, count: int, build: Callable[[int], torch.Tensor]) -> None:
        self._count = count
        self._build = build

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, b: int) -> torch.Tensor:  # type: ignore[override]
        if not -self._count <= b < self._count:
            raise IndexError(b)
        return self._build(b % self._count)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self._build(b) for b in range(self._count))
