"""Job records, the queue and worker leases in the job database (SQLite or PostgreSQL, ``jobs.database``).

The records are the queue: a worker claims the next ``queued`` job (recovered ones first) in one
transaction, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so workers never wait on one another, a write
lock on SQLite. Every state change is one conditional ``UPDATE`` (``WHERE status = ... AND worker_id
= ...``), so two workers, or a worker and a recovery pass, can never both win: a worker whose lease
was taken over finds its update refused and throws its result away. Times are Unix seconds (wall
clock), since records outlive processes.

A key's batch larger than its jobs at once starts with the surplus books ``waiting``: not claimable.
Whatever ends one of the key's jobs (a worker's finish, a cancel, recovery) moves its oldest waiting
jobs into the queue in the same transaction (``_release``), so a key never has more than its limit
queued or running, and nothing ends without its successors being queued, crash or not.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, and_, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from booknlp_api.jobs.database import Database
from booknlp_api.jobs.records import AnalysisInfo, Job, JobError
from booknlp_api.jobs.tables import jobs, workers
from booknlp_api.jobs.worker_records import WorkerRecord as WorkerRecord
from booknlp_api.jobs.worker_records import WorkerRegistry
from booknlp_api.jobs.worker_records import WorkerState as WorkerState

RECOVERED_PRIORITY = 10
"""Jobs put back after a crash or a stop run before fresh ones: they were first in line."""

_INSERTED = ("id", "status", "book_id", "model", "pipeline", "sections", "text_chars", "text_offset", "cache_key",
             "cached_from", "idempotency_key", "request_hash", "created_at", "started_at", "finished_at",
             "expires_at", "analysis", "result_dir", "precision", "owner", "max_active")
_QUEUED = jobs.c.status == "queued"
_ACTIVE = jobs.c.status.in_(("queued", "running"))
_RELEASE_LOCK = 7_311_312
"""PostgreSQL advisory lock class, with the owner's hash: one release per key at a time, so two jobs ending
together cannot both see room for the same waiting job (SQLite's write lock already serialises them)."""


@dataclass(frozen=True)
class Ended:
    """A job's end, recorded: how many of its owner's waiting jobs were queued with it (true when recorded)."""

    released: int = 0


class DuplicateKey(Exception):
    """Another job already holds this idempotency key."""


class JobStore(WorkerRegistry):
    """Jobs and workers in one database, shared safely by threads, processes and (PostgreSQL) machines."""

    def __init__(self, database: Database | Path | str) -> None:
        self.database = Database.open(database)
        self._engine = self.database.engine

    def close(self) -> None:
        self.database.close()

    def _rows(self, query: Any) -> list[Row[Any]]:
        with self.database.reading() as conn:
            return list(conn.execute(query).fetchall())

    def _scalar(self, query: Any) -> Any:
        with self.database.reading() as conn:
            return conn.execute(query).scalar()

    def _change(self, statement: Any) -> int:
        with self._engine.begin() as conn:
            return conn.execute(statement).rowcount

    # -- submission and queries -------------------------------------------------------------------
    def insert(self, job: Job) -> Job:
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(jobs).values(**_columns(job)))
        except IntegrityError as exc:
            raise DuplicateKey(job.idempotency_key) from exc
        stored = self.get(job.id)
        assert stored is not None
        return stored

    def get(self, job_id: str) -> Job | None:
        rows = self._rows(select(jobs).where(jobs.c.id == job_id))
        return job_record(rows[0]) if rows else None

    def by_idempotency_key(self, key: str) -> Job | None:
        rows = self._rows(select(jobs).where(jobs.c.idempotency_key == key))
        return job_record(rows[0]) if rows else None

    def page(self, status: str | None, limit: int, offset: int, owner: str | None = None) -> tuple[list[Job], int]:
        """Jobs newest first, optionally of one status and one owner, and how many there are in all."""
        where = [column == value for column, value in ((jobs.c.status, status), (jobs.c.owner, owner))
                 if value is not None]
        rows = self._rows(select(jobs).where(*where).order_by(jobs.c.seq.desc()).limit(limit).offset(offset))
        total = self._scalar(select(func.count()).select_from(jobs).where(*where))
        return [job_record(row) for row in rows], int(total)

    def count(self, status: str) -> int:
        return int(self._scalar(select(func.count()).select_from(jobs).where(jobs.c.status == status)))

    def count_active(self, owner: str | None) -> int:
        """This owner's jobs queued or running (waiting ones are not: they are held back)."""
        return int(self._scalar(select(func.count()).select_from(jobs).where(_owned_by(owner), _ACTIVE)))

    def queue_summary(self) -> tuple[int, float | None, int]:
        """Jobs queued, when the oldest of them was submitted (None: none queued), and jobs running."""
        queued, oldest = self._rows(select(func.count(), func.min(jobs.c.created_at)).where(_QUEUED))[0]
        running = self.count("running")
        return int(queued), None if oldest is None else float(oldest), running

    def queue_position(self, job: Job) -> int:
        """1 for the next job to run (recovered jobs first, then in order of submission)."""
        ahead = or_(jobs.c.priority > job.priority, and_(jobs.c.priority == job.priority, jobs.c.seq < job.seq))
        return 1 + int(self._scalar(select(func.count()).select_from(jobs).where(_QUEUED, ahead)))

    def ids(self, status: str) -> list[str]:
        return [row[0] for row in self._rows(select(jobs.c.id).where(jobs.c.status == status).order_by(jobs.c.seq))]

    def with_status(self, status: str) -> list[Job]:
        return [job_record(row) for row in self._rows(select(jobs).where(jobs.c.status == status).order_by(jobs.c.seq))]

    def cached_source(self, cache_key: str, now: float) -> Job | None:
        """The newest unexpired success with this cache key."""
        rows = self._rows(select(jobs).where(
            jobs.c.cache_key == cache_key, jobs.c.status == "succeeded", jobs.c.expired == 0, jobs.c.expires_at > now,
            jobs.c.result_dir.is_not(None)).order_by(jobs.c.seq.desc()).limit(1))
        return job_record(rows[0]) if rows else None

    def mean_run_seconds(self, last: int = 20) -> float | None:
        recent = select(jobs.c.finished_at, jobs.c.started_at).where(
            jobs.c.status == "succeeded", jobs.c.cached_from.is_(None), jobs.c.started_at.is_not(None),
        ).order_by(jobs.c.seq.desc()).limit(last).subquery()
        mean = self._scalar(select(func.avg(recent.c.finished_at - recent.c.started_at)))
        return None if mean is None else float(mean)

    # -- a worker's run ----------------------------------------------------------------------------
    def claim_next(self, worker_id: str, now: float) -> Job | None:
        """Take the next queued job for this worker (it becomes ``running``); None when none is waiting."""
        with self._engine.begin() as conn:
            job_id = conn.execute(select(jobs.c.id).where(_QUEUED).order_by(jobs.c.priority.desc(), jobs.c.seq)
                                  .limit(1).with_for_update(skip_locked=True)).scalar()
            if job_id is None or not self._claim(conn, job_id, worker_id, now):
                return None
        return self.get(job_id)

    def claim(self, job_id: str, worker_id: str, now: float) -> Job | None:
        """Mark this queued job running on this worker; None when it is not queued any more."""
        with self._engine.begin() as conn:
            claimed = self._claim(conn, job_id, worker_id, now)
        return self.get(job_id) if claimed else None

    @staticmethod
    def _claim(conn: Connection, job_id: str, worker_id: str, now: float) -> bool:
        return bool(conn.execute(update(jobs).where(jobs.c.id == job_id, _QUEUED).values(
            status="running", worker_id=worker_id, heartbeat_at=now, started_at=now, attempts=jobs.c.attempts + 1,
            progress=None)).rowcount)

    def save_progress(self, job_id: str, worker_id: str, progress: dict[str, Any], now: float) -> None:
        self._change(update(jobs).where(jobs.c.id == job_id, jobs.c.worker_id == worker_id,
                                        jobs.c.status == "running").values(progress=json.dumps(progress),
                                                                           heartbeat_at=now))

    def heartbeat(self, worker_id: str, now: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(workers).where(workers.c.id == worker_id).values(heartbeat_at=now))
            conn.execute(update(jobs).where(jobs.c.worker_id == worker_id, jobs.c.status == "running")
                         .values(heartbeat_at=now))

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._scalar(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)))

    def finish(self, job_id: str, worker_id: str | None, status: str, *, now: float, expires_at: float,
               error: JobError | None = None, analysis: AnalysisInfo | None = None,
               result_dir: str | None = None) -> Ended | None:
        """Record how a running job ended, queueing its owner's next waiting jobs; None when this worker no
        longer owns it."""
        with self._engine.begin() as conn:
            owner = conn.execute(select(jobs.c.owner).where(jobs.c.id == job_id)).scalar()
            if not conn.execute(update(jobs).where(_leased(job_id, worker_id)).values(
                    status=status, finished_at=now, expires_at=expires_at, error=_dump(error),
                    analysis=_dump(analysis), result_dir=result_dir, worker_id=None, heartbeat_at=None)).rowcount:
                return None
            return Ended(self._release(conn, owner))

    def release(self, owner: str | None) -> int:
        """Queue this owner's oldest waiting jobs while it has room under their limit; how many were queued."""
        with self._engine.begin() as conn:
            return self._release(conn, owner)

    def release_all(self) -> int:
        """``release`` for every owner with waiting jobs (recovery: a batch recorded just before a crash)."""
        owners = [row[0] for row in self._rows(select(jobs.c.owner).where(jobs.c.status == "waiting").distinct())]
        return sum(self.release(owner) for owner in owners)

    def _release(self, conn: Connection, owner: str | None) -> int:
        if self.database.is_postgres:
            conn.execute(text("select pg_advisory_xact_lock(:lock, hashtext(:owner))"),
                         {"lock": _RELEASE_LOCK, "owner": owner or ""})
        waiting = select(jobs.c.id, jobs.c.max_active).where(_owned_by(owner), jobs.c.status == "waiting")
        first = conn.execute(waiting.order_by(jobs.c.seq).limit(1)).first()
        if first is None:
            return 0
        active = conn.execute(select(func.count()).select_from(jobs).where(_owned_by(owner), _ACTIVE)).scalar()
        room = (first.max_active or 1) - int(active or 0)
        if room <= 0:
            return 0
        ids = [row.id for row in conn.execute(waiting.order_by(jobs.c.seq).limit(room))]
        return int(conn.execute(update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == "waiting")
                                .values(status="queued")).rowcount)

    def requeue(self, job_id: str, worker_id: str | None) -> bool:
        """Put a running job back in the queue, ahead of fresh jobs (its worker died or is stopping)."""
        return bool(self._change(update(jobs).where(_leased(job_id, worker_id)).values(
            status="queued", worker_id=None, heartbeat_at=None, started_at=None, progress=None,
            priority=RECOVERED_PRIORITY)))

    def cancel(self, job_id: str, now: float, expires_at: float) -> Job | None:
        """Cancel a waiting or queued job at once (queueing its owner's next waiting job in its place), or ask a
        running one to stop; the job as it is then."""
        with self._engine.begin() as conn:
            if conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status.in_(("waiting", "queued"))).values(
                    status="cancelled", finished_at=now, expires_at=expires_at, cancel_requested=1)).rowcount:
                self._release(conn, conn.execute(select(jobs.c.owner).where(jobs.c.id == job_id)).scalar())
            conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running")
                         .values(cancel_requested=1))
        return self.get(job_id)

    # -- upkeep ------------------------------------------------------------------------------------
    def expire(self, now: float) -> list[Job]:
        """Mark finished jobs past their expiry as expired; the ones just marked."""
        due = [job_record(row) for row in self._rows(select(jobs).where(jobs.c.expires_at <= now, jobs.c.expired == 0))]
        for job in due:
            self._change(update(jobs).where(jobs.c.id == job.id).values(expired=1, result_dir=None))
        return due

    def result_dirs(self) -> set[str]:
        return {row[0] for row in self._rows(select(jobs.c.result_dir).where(jobs.c.result_dir.is_not(None)))}


def _owned_by(owner: str | None) -> Any:
    return jobs.c.owner.is_(None) if owner is None else jobs.c.owner == owner


def _leased(job_id: str, worker_id: str | None) -> Any:
    return and_(jobs.c.id == job_id, jobs.c.status == "running", jobs.c.worker_id.is_not_distinct_from(worker_id))


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(asdict(value))


def _columns(job: Job) -> dict[str, Any]:
    values = {name: getattr(job, name) for name in _INSERTED}
    values["pipeline"] = json.dumps(list(job.pipeline))
    values["sections"] = None if job.sections is None else json.dumps(list(job.sections))
    values["analysis"] = _dump(job.analysis)
    return values


def job_record(row: Row[Any]) -> Job:
    """The job in a row of ``jobs`` (alone or joined: only the table's own columns are read)."""
    data = {name: row._mapping[name] for name in jobs.c.keys()}
    data["pipeline"] = tuple(json.loads(data["pipeline"]))
    data["sections"] = None if data["sections"] is None else tuple(json.loads(data["sections"]))
    data["progress"] = None if data["progress"] is None else json.loads(data["progress"])
    data["error"] = None if data["error"] is None else JobError(**json.loads(data["error"]))
    # Analyses recorded before precision existed were exact.
    data["analysis"] = None if data["analysis"] is None else AnalysisInfo(**{"precision": "exact",
                                                                             **json.loads(data["analysis"])})
    data["expired"] = bool(data["expired"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    return Job(**data)
