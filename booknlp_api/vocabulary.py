"""The service's words, defined once for the engine, the jobs, the HTTP schemas and the client.

Pipes and what they need, precisions, result sections, the book-id pattern, job statuses and archive
suffixes. Only the standard library is imported here: the client and the schemas build on this module on a
machine without torch, spaCy, BookNLP or transformers (tests/test_client_light.py checks it).
"""

from __future__ import annotations

import re
from typing import Literal

Pipe = Literal["entity", "quote", "supersense", "event", "coref"]
PIPES: tuple[Pipe, ...] = ("entity", "quote", "supersense", "event", "coref")
"""All pipes, in upstream's order; the default pipeline."""

REQUIRES: dict[str, tuple[str, ...]] = {"quote": ("entity",), "coref": ("entity", "quote")}
"""Upstream's rule: a pipe runs only with the pipes it reads from."""

Precision = Literal["exact", "fast"]
PRECISIONS: tuple[Precision, ...] = ("exact", "fast")

Section = Literal["tokens", "entities", "quotes", "supersenses", "events", "characters"]
SECTIONS: tuple[Section, ...] = ("tokens", "entities", "quotes", "supersenses", "events", "characters")
"""Every section a result can carry, in response order."""

BOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
"""A book id (also a model name): it names files, so no separators and no leading dot."""

JobStatus = Literal["waiting", "queued", "running", "succeeded", "failed", "cancelled"]
"""``waiting``: a batch's book held back, not yet in the queue, because its key already has its jobs-at-once
limit queued or running; it moves to ``queued`` as the key's earlier jobs end (``jobs.store``)."""
JOB_STATUSES: tuple[JobStatus, ...] = ("waiting", "queued", "running", "succeeded", "failed", "cancelled")
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
"""The statuses a job never leaves."""

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
"""Archives of books: sent as one batch (an ``.epub``, itself a zip, is one book)."""
