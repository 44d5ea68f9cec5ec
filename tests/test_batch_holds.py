"""A key's books beyond its jobs at once wait in the store and are queued as its jobs end, on both databases.

Whatever ends a job (a worker's finish, a cancel, recovery) queues the owner's oldest waiting jobs in the
same transaction; two jobs ending together never both fill the same place (PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from booknlp_api.jobs.files import JobFiles
from booknlp_api.jobs.records import Job
from booknlp_api.jobs.recovery import Recovery
from booknlp_api.jobs.signals import Signals
from booknlp_api.jobs.store import JobStore, WorkerRecord


def _waiting(job_id: str, owner: str | None, limit: int) -> Job:
    return Job(id=job_id, seq=0, status="waiting", book_id="book", model="tiny", pipeline=("entity",),
               sections=None, text_chars=10, text_offset=0, cache_key=f"key-{job_id}", created_at=time.time(),
               owner=owner, max_active=limit)


def _statuses(store: JobStore, ids: list[str]) -> list[str]:
    statuses = []
    for job_id in ids:
        job = store.get(job_id)
        assert job is not None
        statuses.append(job.status)
    return statuses


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    store = JobStore(database_url)
    yield store
    store.close()


def test_waiting_jobs_are_queued_oldest_first_as_their_owners_jobs_end(store: JobStore) -> None:
    ids = [f"a{i}" for i in range(5)]
    for job_id in ids:
        store.insert(_waiting(job_id, "a", 2))
    store.insert(_waiting("b0", "b", 1))
    assert store.claim_next("w", time.time()) is None  # waiting jobs are never claimed
    assert store.release("a") == 2 and store.count_active("a") == 2
    assert _statuses(store, ids) == ["queued", "queued", "waiting", "waiting", "waiting"]
    assert _statuses(store, ["b0"]) == ["waiting"]  # another owner's jobs are not its business

    first = store.claim_next("w", time.time())
    assert first is not None and first.id == "a0"
    assert store.release("a") == 0  # a running job still counts
    ended = store.finish("a0", "w", "succeeded", now=time.time(), expires_at=time.time() + 60)
    assert ended and ended.released == 1
    assert _statuses(store, ids) == ["succeeded", "queued", "queued", "waiting", "waiting"]

    store.cancel("a4", time.time(), time.time() + 60)  # a waiting job cancelled frees no place
    assert _statuses(store, ids) == ["succeeded", "queued", "queued", "waiting", "cancelled"]
    store.cancel("a1", time.time(), time.time() + 60)  # a queued one does: the next waiting job takes it
    assert _statuses(store, ids) == ["succeeded", "cancelled", "queued", "queued", "cancelled"]
    assert store.count_active("a") == 2 and store.release("b") == 1


def test_jobs_ending_together_fill_each_place_once(store: JobStore) -> None:
    limit, books = 2, 20
    for i in range(books):
        store.insert(_waiting(f"j{i:02}", "lab", limit))
    store.release("lab")
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(limit) as pool:
        while store.count("succeeded") < books and time.monotonic() < deadline:
            running = [job for job in (store.claim_next(f"w{n}", time.time()) for n in range(limit)) if job]
            assert running, "nothing queued while books still wait: a place was lost"
            start = threading.Barrier(len(running))
            list(pool.map(lambda job, start=start: _finish_together(store, job, start), running))
            assert store.count_active("lab") == min(limit, books - store.count("succeeded"))
    assert store.count("succeeded") == books and store.count("waiting") == 0


def _finish_together(store: JobStore, job: Job, start: threading.Barrier) -> None:
    start.wait(10)  # every end recorded at the same moment
    assert store.finish(job.id, job.worker_id, "succeeded", now=time.time(), expires_at=time.time() + 60)


def test_recovery_queues_waiting_jobs_that_have_room(store: JobStore, tmp_path: Path) -> None:
    for i in range(3):
        store.insert(_waiting(f"r{i}", None, 2))  # recorded, but the submitter died before releasing them
    signals = Signals(tmp_path, store.database)
    try:
        me = WorkerRecord(id="me", host="here", pid=1, started_at=time.time(), heartbeat_at=time.time())
        store.register_worker(me)
        Recovery(store, signals, JobFiles(tmp_path), me, lease_seconds=30, max_attempts=3, ttl_seconds=60).run(
            time.time())
    finally:
        signals.close()
    assert _statuses(store, ["r0", "r1", "r2"]) == ["queued", "queued", "waiting"]
