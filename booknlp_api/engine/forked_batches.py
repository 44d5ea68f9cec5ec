"""A stage's batches shared between this process and forked children, each on one torch thread.

Why processes: torch's second thread does not double a CPU stage's speed. The tagger (BERT, five
LSTMs, Viterbi in numpy, Python around them) took 12.2 s on one thread and 7.5 s on two for *The Call
of the Wild* (small models, 2 cores): a third of the second core idles while one thread runs Python
or a small operation. Two single-thread processes, each with half the batches, keep both cores busy.

Why the output does not change: each batch is computed from the same tensors by the same modules, and
on the machines measured (docs/PERFORMANCE.md) a batch's bits do not depend on the number of torch
threads. Forked children inherit the loaded models (no load, no copy until written) and send their
results back pickled. A child reports no progress (``RunTracker`` ignores calls from another
process): its parent's tracker may write to the job store, which a child must not touch.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

Result = TypeVar("Result")

_JOB: Callable[[int], Any] | None = None
"""The batch function forked children run (set just before they are forked)."""


def shares(costs: Sequence[int], processes: int) -> list[list[int]]:
    """Batch indices per process, about equal in cost: each batch, costliest first, goes to the process
    with the least so far. Every process's indices ascend; the first share is this process's."""
    loads = [0] * processes
    out: list[list[int]] = [[] for _ in range(processes)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        least = loads.index(min(loads))
        out[least].append(index)
        loads[least] += costs[index]
    return [sorted(share) for share in out]


MOST_SHARE = 0.6
"""Share batches only while no process gets more than this fraction of the work. A stage on two torch threads
runs 1.6-1.8x as fast as on one (docs/PERFORMANCE.md), so a process holding more than 1/1.7 of the work on one
thread would finish after the batches run one after another on both: a book's one full batch of 32 quote
windows beside 5 more took attribution from 0.69 to 1.23 s."""


def run_batches(compute: Callable[[int], Result], costs: Sequence[int], processes: int) -> Iterator[Result]:
    """``compute(b)`` for each batch ``b`` in order, the batches shared over ``processes`` processes (this one
    and forked children) by ``costs``; one at a time in this process when ``processes`` < 2, there is one batch
    or the shares come out lopsided (then each result is made when it is read, as upstream's loop makes it)."""
    processes = min(processes, len(costs))
    if processes < 2 or max(_loads(costs, processes)) > MOST_SHARE * sum(costs):
        return (compute(b) for b in range(len(costs)))
    return iter(_run_forked(compute, costs, processes))


def _loads(costs: Sequence[int], processes: int) -> list[int]:
    return [sum(costs[b] for b in share) for share in shares(costs, processes)]


def _run_forked(compute: Callable[[int], Result], costs: Sequence[int], processes: int) -> list[Result]:
    mine, *theirs = shares(costs, processes)
    global _JOB
    _JOB = compute
    threads = torch.get_num_threads()
    found: dict[int, Result] = {}
    try:
        with multiprocessing.get_context("fork").Pool(len(theirs)) as pool:
            pending = [(share, pool.apply_async(_run_share, (share,))) for share in theirs]
            torch.set_num_threads(1)
            found.update((b, compute(b)) for b in mine)
            for share, job in pending:
                found.update(zip(share, job.get(), strict=True))
    finally:
        torch.set_num_threads(threads)
        _JOB = None
    return [found[b] for b in range(len(costs))]


def _run_share(share: list[int]) -> list[Any]:
    # the parent's thread count would start OpenMP threads in a forked child (unsafe, and no core is free)
    torch.set_num_threads(1)
    assert _JOB is not None
    with torch.inference_mode():
        return [_JOB(b) for b in share]
