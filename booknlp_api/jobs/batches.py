"""Batches: many books submitted in one call, each an ordinary job, followed and fetched together.

A batch is a row in ``batches`` and its books' jobs, in order, in ``batch_jobs``; the jobs themselves
are queued, run, cancelled and expire like any other. A batch may hold more books than its key's jobs
at once: every book starts ``waiting`` and as many as fit are queued at once; the rest are queued as
the key's earlier jobs end (``JobStore._release``), so other keys' jobs never queue behind a corpus.

Idempotent like jobs: a retried batch with the same ``Idempotency-Key`` returns the first one, and each
book's job carries a key derived from the batch's, so even two racing retries make each book's job once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from booknlp_api.jobs.errors import BatchNotFound, IdempotencyConflict, JobAlreadyFinished, QueueFull
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService
from booknlp_api.jobs.store import job_record
from booknlp_api.jobs.tables import batch_jobs, batches, jobs

Submit = Callable[[Submission, int], tuple[Job, bool]]
"""Submits one book's job, held to be queued within that many jobs at once, and says whether it is new."""
Admit = Callable[[list[Submission]], int]
"""Raises when the caller may not submit these books (its characters per day); else the jobs it may have queued
or running at once, within which the books are queued. Called only for a new batch."""


@dataclass(frozen=True)
class BatchBook:
    name: str
    """The book's name in the batch: its file name without extension, unique within the batch."""
    job: Job


@dataclass(frozen=True)
class Batch:
    id: str
    created_at: float
    books: list[BatchBook]

    @property
    def finished(self) -> bool:
        return all(book.job.finished for book in self.books)


class BatchService:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self._engine = jobs.database.engine

    def create(self, books: list[tuple[str, Submission]], submit: Submit, admit: Admit, owner: str | None,
               idempotency_key: str | None) -> tuple[Batch, bool]:
        """The batch of these books (name, submission), and whether it is new (False: the key's earlier one)."""
        request_hash = _request_hash(books)
        key = None if idempotency_key is None else f"{owner or ''}\n{idempotency_key}"
        if key is not None and (earlier := self._by_key(key)) is not None:
            return self._same_request(earlier, request_hash, idempotency_key), False
        max_active = admit([submission for _, submission in books])
        queued = self.jobs.store.count("queued")
        if queued + min(len(books), max_active) > self.jobs.settings.max_queued_jobs:
            raise QueueFull(queued, self.jobs.retry_after())
        batch_id = uuid.uuid4().hex
        rows = []
        for position, (name, submission) in enumerate(books):
            # A key per book, derived from the batch's: a racing retry finds each job instead of making another.
            book_key = None if idempotency_key is None else f"batch {idempotency_key} #{position}"
            job, _ = submit(Submission(**{**vars(submission), "idempotency_key": book_key}), max_active)
            rows.append({"batch_id": batch_id, "position": position, "name": name, "job_id": job.id})
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(batches).values(id=batch_id, owner=owner, idempotency_key=key,
                                                    request_hash=request_hash, created_at=time.time()))
                conn.execute(insert(batch_jobs), rows)
        except IntegrityError:
            assert key is not None and idempotency_key is not None  # only the key is unique besides the new id
            earlier = self._by_key(key)
            assert earlier is not None
            return self._same_request(earlier, request_hash, idempotency_key), False
        finally:
            self.jobs.release(owner)
        return self.get(batch_id), True

    def get(self, batch_id: str, owner: str | None = None) -> Batch:
        """The batch with its jobs as they are now; with ``owner``, only if it is theirs."""
        with self._engine.begin() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
            if row is None or (owner is not None and row.owner != owner):
                raise BatchNotFound(batch_id)
            members = conn.execute(select(batch_jobs.c.name, jobs).join(jobs, jobs.c.id == batch_jobs.c.job_id)
                                   .where(batch_jobs.c.batch_id == batch_id)
                                   .order_by(batch_jobs.c.position)).fetchall()
        return Batch(id=row.id, created_at=row.created_at,
                     books=[BatchBook(member.name, job_record(member)) for member in members])

    def page(self, limit: int, offset: int, owner: str | None = None) -> tuple[list[Batch], int]:
        """Batches newest first, optionally only one owner's, and how many there are in all."""
        where = [] if owner is None else [batches.c.owner == owner]
        with self._engine.begin() as conn:
            ids = conn.execute(select(batches.c.id).where(*where).order_by(batches.c.created_at.desc(),
                                                                          batches.c.id).limit(limit).offset(offset))
            total = conn.execute(select(func.count()).select_from(batches).where(*where)).scalar()
            page = [row.id for row in ids]
        return [self.get(batch_id) for batch_id in page], int(total or 0)

    def cancel(self, batch_id: str, owner: str | None = None) -> Batch:
        """Cancel every job of the batch that has not ended (running ones stop at their next boundary). Waiting
        books go first, so none is queued in the place of a book being cancelled."""
        books = self.get(batch_id, owner).books
        for book in sorted(books, key=lambda book: book.job.status != "waiting"):
            if not book.job.finished:
                with contextlib.suppress(JobAlreadyFinished):  # it ended meanwhile
                    self.jobs.cancel(book.job.id)
        return self.get(batch_id)

    def _by_key(self, key: str) -> tuple[str, str] | None:
        with self._engine.begin() as conn:
            row = conn.execute(select(batches.c.id, batches.c.request_hash)
                               .where(batches.c.idempotency_key == key)).first()
        return None if row is None else (row.id, row.request_hash)

    def _same_request(self, earlier: tuple[str, str], request_hash: str, idempotency_key: str) -> Batch:
        batch_id, earlier_hash = earlier
        if earlier_hash != request_hash:
            raise IdempotencyConflict(idempotency_key, batch_id)
        return self.get(batch_id)


def _request_hash(books: list[tuple[str, Submission]]) -> str:
    parts = [[name, hashlib.sha256(s.text.encode()).hexdigest(), s.model, s.pipeline, s.sections, s.precision,
              s.cache, s.text_offset] for name, s in books]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
