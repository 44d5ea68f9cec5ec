"""Job records in SQLite: the source of truth for every job, whatever the queue holds.

Every state change is one conditional ``UPDATE`` (``WHERE status = ... AND worker_id = ...``), so two
workers, or a worker and a recovery pass, can never both win: a worker whose lease was taken over
finds its update refused and throws its result away. Times are Unix seconds (wall clock), since
records outlive processes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from booknlp_api.jobs.records import AnalysisInfo, Job, JobError

_SCHEMA = """
create table if not exists jobs (
    seq integer primary key autoincrement,
    id text not null unique,
    status text not null,
    book_id text not null,
    model text not null,
    pipeline text not null,
    sections text,
    text_chars integer not null,
    text_offset integer not null default 0,
    cache_key text not null,
    cached_from text,
    idempotency_key text unique,
    request_hash text,
    created_at real not null,
    started_at real,
    finished_at real,
    expires_at real,
    expired integer not null default 0,
    progress text,
    error text,
    analysis text,
    result_dir text,
    worker_id text,
    heartbeat_at real,
    attempts integer not null default 0,
    cancel_requested integer not null default 0,
    precision text not null default 'exact',
    owner text
);
create index if not exists jobs_status_seq on jobs (status, seq);
create index if not exists jobs_cache_key on jobs (cache_key, status);
create table if not exists workers (
    id text primary key,
    host text not null,
    pid integer not null,
    started_at real not null,
    heartbeat_at real not null,
    state text not null default 'loading',
    error text,
    device text,
    models text
);
"""

_WORKER_COLUMNS = {"state": "text not null default 'loading'", "error": "text", "device": "text", "models": "text"}
_JOB_COLUMNS = {"precision": "text not null default 'exact'", "owner": "text"}
"""Columns added to ``workers`` and ``jobs`` since their first release; older databases gain them when opened."""
WorkerState = Literal["loading", "ready", "failed"]

_INSERTED = ("id", "status", "book_id", "model", "pipeline", "sections", "text_chars", "text_offset", "cache_key",
             "cached_from", "idempotency_key", "request_hash", "created_at", "started_at", "finished_at",
             "expires_at", "analysis", "result_dir", "precision", "owner")


class DuplicateKey(Exception):
    """Another job already holds this idempotency key."""


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    state: WorkerState = "loading"
    error: str | None = None
    device: dict[str, Any] | None = None
    """The device the worker's models run on (``booknlp_api.device.DeviceInfo`` as a dict)."""
    models: list[dict[str, Any]] | None = None
    """The models it loaded: name, components, synthetic, seed, source, load_seconds."""


class JobStore:
    """One SQLite database (WAL, shared safely by threads and processes) holding jobs and workers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=normal")
        with self._lock:
            self._conn.executescript(_SCHEMA)
            self._add_columns("workers", _WORKER_COLUMNS)
            self._add_columns("jobs", _JOB_COLUMNS)
            self._conn.execute("create index if not exists jobs_owner_seq on jobs (owner, seq)")

    def _add_columns(self, table: str, columns: dict[str, str]) -> None:
        present = {row["name"] for row in self._conn.execute(f"pragma table_info({table})")}
        for name, kind in columns.items():
            if name not in present:
                try:
                    self._conn.execute(f"alter table {table} add column {name} {kind}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # else another process added it first
                        raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("begin immediate")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("rollback")
                raise
            self._conn.execute("commit")

    def _rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _change(self, sql: str, *params: Any) -> int:
        with self._write() as conn:
            return conn.execute(sql, params).rowcount

    # -- submission and queries -------------------------------------------------------------------
    def insert(self, job: Job) -> Job:
        values = _columns(job)
        try:
            with self._write() as conn:
                conn.execute(f"insert into jobs ({', '.join(_INSERTED)}) values ({', '.join('?' * len(_INSERTED))})",
                             [values[name] for name in _INSERTED])
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(job.idempotency_key) from exc
        stored = self.get(job.id)
        assert stored is not None
        return stored

    def get(self, job_id: str) -> Job | None:
        rows = self._rows("select * from jobs where id = ?", job_id)
        return _job(rows[0]) if rows else None

    def by_idempotency_key(self, key: str) -> Job | None:
        rows = self._rows("select * from jobs where idempotency_key = ?", key)
        return _job(rows[0]) if rows else None

    def page(self, status: str | None, limit: int, offset: int, owner: str | None = None) -> tuple[list[Job], int]:
        """Jobs newest first, optionally of one status and one owner, and how many there are in all."""
        filters = {"status": status, "owner": owner}
        params = [value for value in filters.values() if value is not None]
        where = " and ".join(f"{name} = ?" for name, value in filters.items() if value is not None)
        where = f"where {where}" if where else ""
        rows = self._rows(f"select * from jobs {where} order by seq desc limit ? offset ?", *params, limit, offset)
        total = self._rows(f"select count(*) from jobs {where}", *params)[0][0]
        return [_job(row) for row in rows], int(total)

    def count(self, status: str) -> int:
        return int(self._rows("select count(*) from jobs where status = ?", status)[0][0])

    def count_active(self, owner: str) -> int:
        """This owner's jobs queued or running."""
        return int(self._rows("select count(*) from jobs where owner = ? and status in ('queued', 'running')",
                              owner)[0][0])

    def queue_summary(self) -> tuple[int, float | None, int]:
        """Jobs queued, when the oldest of them was submitted (None: none queued), and jobs running."""
        rows = self._rows("select count(*), min(created_at) from jobs where status = 'queued'")
        running = self._rows("select count(*) from jobs where status = 'running'")[0][0]
        return int(rows[0][0]), None if rows[0][1] is None else float(rows[0][1]), int(running)

    def queue_position(self, job: Job) -> int:
        """1 for the next job to run."""
        return 1 + int(self._rows("select count(*) from jobs where status = 'queued' and seq < ?", job.seq)[0][0])

    def ids(self, status: str) -> list[str]:
        return [row[0] for row in self._rows("select id from jobs where status = ? order by seq", status)]

    def with_status(self, status: str) -> list[Job]:
        return [_job(row) for row in self._rows("select * from jobs where status = ? order by seq", status)]

    def cached_source(self, cache_key: str, now: float) -> Job | None:
        """The newest unexpired success with this cache key."""
        rows = self._rows("select * from jobs where cache_key = ? and status = 'succeeded' and not expired "
                          "and expires_at > ? and result_dir is not null order by seq desc limit 1", cache_key, now)
        return _job(rows[0]) if rows else None

    def mean_run_seconds(self, last: int = 20) -> float | None:
        rows = self._rows("select avg(finished_at - started_at) from (select finished_at, started_at from jobs "
                          "where status = 'succeeded' and cached_from is null and started_at is not null "
                          "order by seq desc limit ?)", last)
        return None if rows[0][0] is None else float(rows[0][0])

    # -- a worker's run ----------------------------------------------------------------------------
    def claim(self, job_id: str, worker_id: str, now: float) -> Job | None:
        """Mark a queued job running on this worker; None when it is not queued any more."""
        changed = self._change("update jobs set status = 'running', worker_id = ?, heartbeat_at = ?, started_at = ?, "
                               "attempts = attempts + 1, progress = null where id = ? and status = 'queued'",
                               worker_id, now, now, job_id)
        return self.get(job_id) if changed else None

    def save_progress(self, job_id: str, worker_id: str, progress: dict[str, Any], now: float) -> None:
        self._change("update jobs set progress = ?, heartbeat_at = ? where id = ? and worker_id = ? "
                     "and status = 'running'", json.dumps(progress), now, job_id, worker_id)

    def heartbeat(self, worker_id: str, now: float) -> None:
        with self._write() as conn:
            conn.execute("update workers set heartbeat_at = ? where id = ?", (now, worker_id))
            conn.execute("update jobs set heartbeat_at = ? where worker_id = ? and status = 'running'",
                         (now, worker_id))

    def cancel_requested(self, job_id: str) -> bool:
        rows = self._rows("select cancel_requested from jobs where id = ?", job_id)
        return bool(rows and rows[0][0])

    def finish(self, job_id: str, worker_id: str | None, status: str, *, now: float, expires_at: float,
               error: JobError | None = None, analysis: AnalysisInfo | None = None,
               result_dir: str | None = None) -> bool:
        """Record how a running job ended; False when this worker no longer owns it."""
        return bool(self._change(
            "update jobs set status = ?, finished_at = ?, expires_at = ?, error = ?, analysis = ?, result_dir = ?, "
            "worker_id = null, heartbeat_at = null where id = ? and status = 'running' and worker_id is ?",
            status, now, expires_at, _dump(error), _dump(analysis), result_dir, job_id, worker_id))

    def requeue(self, job_id: str, worker_id: str | None) -> bool:
        """Put a running job back in the queue (its worker died or is stopping)."""
        return bool(self._change(
            "update jobs set status = 'queued', worker_id = null, heartbeat_at = null, started_at = null, "
            "progress = null where id = ? and status = 'running' and worker_id is ?", job_id, worker_id))

    def cancel(self, job_id: str, now: float, expires_at: float) -> Job | None:
        """Cancel a queued job at once, or ask a running one to stop; the job as it is then."""
        with self._write() as conn:
            conn.execute("update jobs set status = 'cancelled', finished_at = ?, expires_at = ?, cancel_requested = 1 "
                         "where id = ? and status = 'queued'", (now, expires_at, job_id))
            conn.execute("update jobs set cancel_requested = 1 where id = ? and status = 'running'", (job_id,))
        return self.get(job_id)

    # -- upkeep ------------------------------------------------------------------------------------
    def expire(self, now: float) -> list[Job]:
        """Mark finished jobs past their expiry as expired; the ones just marked."""
        due = [_job(row) for row in self._rows("select * from jobs where expires_at <= ? and not expired", now)]
        for job in due:
            self._change("update jobs set expired = 1, result_dir = null where id = ?", job.id)
        return due

    def result_dirs(self) -> set[str]:
        return {row[0] for row in self._rows("select result_dir from jobs where result_dir is not null")}

    def register_worker(self, worker: WorkerRecord) -> None:
        self._change("insert or replace into workers (id, host, pid, started_at, heartbeat_at, state, error, device, "
                     "models) values (?, ?, ?, ?, ?, ?, ?, ?, ?)", worker.id, worker.host, worker.pid,
                     worker.started_at, worker.heartbeat_at, worker.state, worker.error,
                     _json(worker.device), _json(worker.models))

    def set_worker_state(self, worker_id: str, state: WorkerState, *, error: str | None = None,
                         device: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None) -> None:
        self._change("update workers set state = ?, error = ?, device = ?, models = ? where id = ?",
                     state, error, _json(device), _json(models), worker_id)

    def forget_worker(self, worker_id: str) -> None:
        self._change("delete from workers where id = ?", worker_id)

    def workers(self) -> dict[str, WorkerRecord]:
        return {row["id"]: _worker(row) for row in self._rows("select * from workers")}


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(asdict(value))


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _worker(row: sqlite3.Row) -> WorkerRecord:
    data = dict(row)
    for name in ("device", "models"):
        data[name] = None if data[name] is None else json.loads(data[name])
    return WorkerRecord(**data)


def _columns(job: Job) -> dict[str, Any]:
    values = {name: getattr(job, name) for name in _INSERTED}
    values["pipeline"] = json.dumps(list(job.pipeline))
    values["sections"] = None if job.sections is None else json.dumps(list(job.sections))
    values["analysis"] = _dump(job.analysis)
    return values


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
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
