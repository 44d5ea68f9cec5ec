"""How much memory a book will take, checked before any work so a worker is never OOM-killed mid-run.

A run's peak RSS grows with the book: ``base + per_token · tokens``, with a steeper slope up to the
length where coref's one BERT batch (128 chunks) is full (measured with ``benchmarks/long_book_memory.py``;
figures in docs/PERFORMANCE.md). A job whose estimate exceeds
the memory a worker may use (``BOOKNLP_WORKER_MEMORY_BYTES``; default: the cgroup's limit, else the
machine's physical memory) fails at once with ``too_large_for_memory`` instead of being killed by the
kernel and retried until its attempts run out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from booknlp_api.engine.errors import EngineError
from booknlp_api.models.catalog import shape_from_file_name
from booknlp_api.models.manifest import ModelManifest

_WORDS = re.compile(r"\w+|[^\w\s]")
"""Roughly spaCy's tokens: words and single punctuation marks (within a few % on the novels)."""


@dataclass(frozen=True)
class MemoryProfile:
    base: int
    """Bytes of a worker with the model's components and spaCy loaded."""
    per_token: int
    """Bytes each token of the book adds to the run's peak (up to ``steep_until`` tokens, when set)."""
    steep_until: int | None = None
    """Tokens past which coref's BERT batch has stopped growing; each later token adds ``per_token_after``."""
    per_token_after: int = 0


SMALL = MemoryProfile(base=2560 * 2**20, per_token=5 * 1024)
"""Fitted above the peaks measured with the small architecture on CPU since batches are built lazily and freed
pages returned (docs/PERFORMANCE.md, "Long books: memory"): a ~708K-token book peaks in the spaCy parse at
4.44 GiB (estimate 6.0); the 102K-token book peaked at 2.99 GiB in coref before that change, which only
lowers peaks (estimate 3.0). The parse's ~5.6 KB per token overtakes the slope only past ~3M tokens, beyond
``BOOKNLP_MAX_JOB_CHARS``'s default."""
BIG = MemoryProfile(base=4608 * 2**20, per_token=50 * 1024, steep_until=50_000, per_token_after=26 * 1024)
"""Fitted above the big architecture's measured peaks on CPU (docs/PERFORMANCE.md): 3.59 GiB at 12,001 tokens
(estimate 5.1) and 5.92 GiB at 41,794 tokens, in coref (estimate 6.5; the old linear 4 GiB + 26 KB/token said
5.1 there, too little). Coref's one BERT batch of up to 128 chunks of 500 word pieces grows until about 50K
tokens, hence the steep first slope; past it, 26 KB per token is assumed (not measured on a longer book)."""

_NO_LIMIT = 2**60
"""cgroup v1 writes 'no limit' as a number near 2**63; anything above this means unlimited."""


class TooLargeForMemory(EngineError):
    """The book's estimated peak memory exceeds what a worker may use."""

    code = "too_large_for_memory"

    def __init__(self, tokens: int, estimate: int, limit: int) -> None:
        super().__init__(
            f"this text (~{tokens} tokens) needs about {_gib(estimate)} of memory to analyse, more than the "
            f"{_gib(limit)} a worker may use; raise BOOKNLP_WORKER_MEMORY_BYTES (and the worker's memory "
            "limit with it) or split the text")
        self.tokens = tokens
        self.estimate = estimate
        self.limit = limit


def count_tokens(text: str) -> int:
    return sum(1 for _ in _WORDS.finditer(text))


def profile_for(manifest: ModelManifest) -> MemoryProfile:
    """The big profile for models with a BERT-base-sized component (hidden 768 or more), else the small one."""
    hidden = max((shape_from_file_name(name).hidden for name in manifest.components.values()), default=768)
    return BIG if hidden >= 768 else SMALL


def estimate_bytes(text: str, profile: MemoryProfile, tokens: int | None = None) -> int:
    """Expected peak RSS of a worker analysing ``text`` (CPU, whole pipeline)."""
    tokens = count_tokens(text) if tokens is None else tokens
    if profile.steep_until is None or tokens <= profile.steep_until:
        return profile.base + profile.per_token * tokens
    return profile.base + profile.per_token * profile.steep_until \
        + profile.per_token_after * (tokens - profile.steep_until)


FAST_COPY_PER_FILE_BYTE = 1.75
"""Resident bytes of fast mode's own copy of a component per byte of its model file: an int8 coref copy
measured +68 MiB (small, 40.8 MB file) and +563 MiB (big, 446 MB file) of RSS, 1.75x and 1.32x; the speaker
copy with its int8 BERT +44 MiB (small, 57.6 MB) and +535 MiB (big, 438.6 MB), 0.79x and 1.28x."""


def check_fits(text: str, profile: MemoryProfile, limit: int) -> None:
    """Raise ``TooLargeForMemory`` when ``text`` would not fit in ``limit`` bytes."""
    tokens = count_tokens(text)
    estimate = estimate_bytes(text, profile, tokens)
    if estimate > limit:
        raise TooLargeForMemory(tokens, estimate, limit)


def available_memory(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The memory this process may use: its cgroup's limit (v2, then v1), else physical memory."""
    for limit_file in (cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"):
        try:
            value = limit_file.read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < _NO_LIMIT:
            return int(value)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _load_libc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to hand back
        return None


_MALLOC_TRIM = _load_libc_trim()


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``); False where unsupported.

    glibc keeps freed blocks below its (self-raising, up to 32 MiB) mmap threshold in the heap: after a
    stage's tensors are freed a worker still holds their pages, ~1 GiB at 100K tokens, for the rest of
    the run and, after a long book, while it waits for the next job. Output is untouched: only free
    pages are released.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"
