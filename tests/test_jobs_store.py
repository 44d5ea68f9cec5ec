"""The job layer without running the engine: records, leases, recovery, expiry, submission rules.

Worker liveness is decided with real processes: a pid that has exited is a dead worker.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from booknlp_api.config import Settings
from booknlp_api.engine.errors import InvalidPipeline, ModelNotAvailable
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.text import TextTooLarge
from booknlp_api.jobs.database import MIGRATIONS, UnavailableWhenExhausted
from booknlp_api.jobs.database import database_url as sqlalchemy_url
from booknlp_api.jobs.errors import (
    DatabaseUnavailable,
    IdempotencyConflict,
    JobAlreadyFinished,
    JobNotFinished,
    JobNotFound,
    QueueFull,
    ResultExpired,
)
from booknlp_api.jobs.files import RESULT_JSON, JobFiles
from booknlp_api.jobs.keys import KeyStore
from booknlp_api.jobs.rate_counters import DatabaseRateStorage
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.recovery import Recovery
from booknlp_api.jobs.results import JobResults
from booknlp_api.jobs.service import JobService
from booknlp_api.jobs.signals import Signals
from booknlp_api.jobs.store import JobStore, WorkerRecord
from tests.conftest import database_setting

LEASE = 30.0
HEAD = "0005"
"""The newest migration (booknlp_api/jobs/migrations/versions)."""

Parts = tuple[JobStore, Signals, JobFiles]


def _record(job_id: str, **changes: object) -> Job:
    job = Job(id=job_id, seq=0, status="queued", book_id="book", model="tiny", pipeline=("entity",), sections=None,
              text_chars=10, text_offset=0, cache_key=f"key-{job_id}", created_at=time.time())
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def parts(tmp_path: Path, database_url: str) -> Iterator[Parts]:
    store = JobStore(database_url)
    signals = Signals(tmp_path, store.database)
    yield store, signals, JobFiles(tmp_path)
    signals.close()
    store.close()


def _recovery(parts: Parts, me: WorkerRecord, attempts: int = 3) -> Recovery:
    store, signals, files = parts
    return Recovery(store, signals, files, me, lease_seconds=LEASE, max_attempts=attempts, ttl_seconds=60)


def _worker(name: str, *, pid: int, host: str = "here", beat: float | None = None) -> WorkerRecord:
    now = time.time() if beat is None else beat
    return WorkerRecord(id=name, host=host, pid=pid, started_at=now, heartbeat_at=now)


def test_only_a_queued_job_can_be_claimed_and_only_its_worker_can_finish_it(parts: Parts) -> None:
    store, _, _ = parts
    store.insert(_record("a"))
    claimed = store.claim("a", "w1", time.time())
    assert claimed is not None and (claimed.status, claimed.worker_id, claimed.attempts) == ("running", "w1", 1)
    assert store.claim("a", "w2", time.time()) is None
    assert not store.finish("a", "w2", "succeeded", now=time.time(), expires_at=time.time() + 60)
    assert store.requeue("a", "w1")
    assert store.claim("a", "w2", time.time()).attempts == 2  # type: ignore[union-attr]
    assert store.finish("a", "w2", "succeeded", now=time.time(), expires_at=time.time() + 60)
    assert store.get("a").status == "succeeded"  # type: ignore[union-attr]


def _claim_all(store: JobStore, worker: str = "w") -> list[str]:
    claimed = []
    while (job := store.claim_next(worker, time.time())) is not None:
        claimed.append(job.id)
    return claimed


def test_jobs_are_claimed_in_order_and_recovered_ones_first(parts: Parts) -> None:
    store, _, _ = parts
    for job_id in ("recovered", "fresh1", "fresh2"):
        store.insert(_record(job_id))
    assert store.claim("recovered", "w0", time.time()) is not None
    assert store.requeue("recovered", "w0")
    positions = [store.queue_position(store.get(job_id)) for job_id in ("recovered", "fresh1", "fresh2")]  # type: ignore[arg-type]
    assert positions == [1, 2, 3]
    assert _claim_all(store) == ["recovered", "fresh1", "fresh2"]
    assert store.get("recovered").attempts == 2  # type: ignore[union-attr]


def test_concurrent_claims_take_every_job_exactly_once(parts: Parts) -> None:
    store, _, _ = parts
    for n in range(40):
        store.insert(_record(f"job{n}"))
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda worker: _claim_all(store, worker), ["w1", "w2", "w3", "w4"]))
    everything = [job_id for claimed in taken for job_id in claimed]
    assert sorted(everything) == sorted(f"job{n}" for n in range(40))
    assert store.count("running") == 40 and store.claim_next("late", time.time()) is None


def test_the_running_job_of_a_dead_process_is_requeued_first(parts: Parts) -> None:
    store, _, _ = parts
    dead = _worker("dead", pid=_exited_pid())
    store.register_worker(dead)
    store.insert(_record("waiting"))
    store.insert(_record("orphan"))
    store.claim("orphan", dead.id, time.time())
    me = _worker("me", pid=1_000_000_000)
    assert _recovery(parts, me).recover_running(time.time()) == ["orphan"]
    assert store.get("orphan").status == "queued"  # type: ignore[union-attr]
    assert "dead" not in store.workers()
    assert _claim_all(store) == ["orphan", "waiting"]


def test_a_live_workers_job_is_left_alone_until_its_lease_runs_out(parts: Parts) -> None:
    store, _, _ = parts
    elsewhere = _worker("other-host", pid=1, host="elsewhere")
    store.register_worker(elsewhere)
    store.insert(_record("busy"))
    store.claim("busy", elsewhere.id, time.time())
    recovery = _recovery(parts, _worker("me", pid=2))
    assert recovery.recover_running(time.time()) == []
    assert recovery.recover_running(time.time() + LEASE + 1) == ["busy"]


def test_our_own_pid_under_another_worker_id_is_a_past_life(parts: Parts) -> None:
    store, _, _ = parts
    before_restart = _worker("container-before", pid=7)
    store.register_worker(before_restart)
    store.insert(_record("interrupted"))
    store.claim("interrupted", before_restart.id, time.time())
    assert _recovery(parts, _worker("container-after", pid=7)).recover_running(time.time()) == ["interrupted"]


def test_recovery_ends_jobs_being_cancelled_or_out_of_attempts(parts: Parts, tmp_path: Path) -> None:
    store, _, files = parts
    dead = _worker("dead", pid=_exited_pid())
    store.register_worker(dead)
    for job_id in ("cancelling", "doomed"):
        store.insert(_record(job_id))
        files.save_text(job_id, "text")
        store.claim(job_id, dead.id, time.time())
    store.cancel("cancelling", time.time(), time.time() + 60)
    _recovery(parts, _worker("me", pid=1_000_000_000), attempts=1).recover_running(time.time())
    assert store.get("cancelling").status == "cancelled"  # type: ignore[union-attr]
    doomed = store.get("doomed")
    assert doomed is not None and doomed.status == "failed" and doomed.error is not None
    assert doomed.error.code == "worker_lost"
    assert store.claim_next("me", time.time()) is None
    assert list(files.texts.iterdir()) == []


def test_expired_results_are_deleted_and_orphans_swept(parts: Parts) -> None:
    store, _, files = parts
    run = files.new_run("old")
    (run / RESULT_JSON).write_text("{}")
    name = files.publish(run)
    now = time.time()
    store.insert(_record("old", status="succeeded", finished_at=now - 120, expires_at=now - 60, result_dir=name))
    orphan = files.new_run("crashed")
    stray_text = files.texts / "vanished.txt"
    stray_text.write_text("no job has this text")
    _recovery(parts, _worker("me", pid=1)).expire(now + 3600)
    job = store.get("old")
    assert job is not None and job.expired and job.result_dir is None
    assert not files.result(name).exists()
    assert not orphan.exists() and not stray_text.exists()
    with pytest.raises(ResultExpired):
        JobResults(files).json(job)


def test_a_workers_table_from_before_readiness_gains_its_columns_and_records_states(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("create table workers (id text primary key, host text not null, pid integer not null, "
                   "started_at real not null, heartbeat_at real not null)")
        db.execute("insert into workers values ('old', 'here', 1, 0, 0)")
    db.close()
    store, again = JobStore(path), JobStore(path)  # a second opener finds the columns already there
    assert store.workers()["old"].state == "loading"
    store.register_worker(_worker("new", pid=2))
    store.set_worker_state("new", "ready", device={"device": "cpu"}, models=[{"name": "tiny"}])
    store.set_worker_state("old", "failed", error="no model")
    workers = again.workers()
    assert (workers["new"].state, workers["new"].device, workers["new"].models) == ("ready", {"device": "cpu"},
                                                                                    [{"name": "tiny"}])
    assert (workers["old"].state, workers["old"].error) == ("failed", "no model")


# The schema as the last release before migrations created it (booknlp_api/jobs/store.py and keys.py then).
_RELEASED_SCHEMA = """
create table jobs (seq integer primary key autoincrement, id text not null unique, status text not null,
    book_id text not null, model text not null, pipeline text not null, sections text, text_chars integer not null,
    text_offset integer not null default 0, cache_key text not null, cached_from text, idempotency_key text unique,
    request_hash text, created_at real not null, started_at real, finished_at real, expires_at real,
    expired integer not null default 0, progress text, error text, analysis text, result_dir text, worker_id text,
    heartbeat_at real, attempts integer not null default 0, cancel_requested integer not null default 0,
    precision text not null default 'exact', owner text);
create index jobs_status_seq on jobs (status, seq);
create index jobs_cache_key on jobs (cache_key, status);
create index jobs_owner_seq on jobs (owner, seq);
create table workers (id text primary key, host text not null, pid integer not null, started_at real not null,
    heartbeat_at real not null, state text not null default 'loading', error text, device text, models text);
create table api_keys (name text primary key, key_hash text not null unique, admin integer not null default 0,
    created_at real not null, revoked_at real, rate_limit text, max_active_jobs integer, max_chars_per_day integer);
"""


@pytest.mark.parametrize("release", ["last", "before keys and precision"])
def test_a_database_from_before_migrations_is_upgraded_in_place_and_its_jobs_read_and_run(
        tmp_path: Path, release: str) -> None:
    path = tmp_path / "jobs.sqlite3"
    summary = {"model": "tiny", "pipeline": ["entity"], "device": "cpu", "synthetic_models": True,
               "token_count": 3, "timings": {"parse": 0.1}}
    with sqlite3.connect(path) as db:
        db.executescript(_RELEASED_SCHEMA)
        if release != "last":
            db.execute("drop index jobs_owner_seq")
            db.execute("alter table jobs drop column owner")
            db.execute("alter table jobs drop column precision")
            db.execute("drop table api_keys")
        for seq, (job_id, status) in enumerate([("done", "succeeded"), ("waiting", "queued")], start=1):
            db.execute("insert into jobs (seq, id, status, book_id, model, pipeline, text_chars, cache_key, "
                       "created_at, analysis) values (?, ?, ?, 'old', 'tiny', '[\"entity\"]', 3, 'k', ?, ?)",
                       (seq, job_id, status, time.time(), json.dumps(summary) if status == "succeeded" else None))
    db.close()
    store, again = JobStore(path), JobStore(path)  # a second opener finds the schema up to date
    done = again.get("done")
    assert done is not None and done.analysis is not None
    assert (done.status, done.precision, done.analysis.precision, done.analysis.token_count, done.owner) == (
        "succeeded", "exact", "exact", 3, None)
    claimed = store.claim_next("w", time.time())  # the old queue's job, from the records alone
    assert claimed is not None and (claimed.id, claimed.status, claimed.attempts) == ("waiting", "running", 1)
    mine = store.insert(dataclasses.replace(_record("mine"), owner="alice"))
    assert mine.owner == "alice" and mine.seq == 3
    assert [job.id for job in store.page(None, 10, 0, "alice")[0]] == ["mine"]
    assert [job.id for job in store.page(None, 10, 0)[0]] == ["mine", "waiting", "done"]
    assert KeyStore(path).create("bob").startswith("bnlp_")
    with sqlite3.connect(path) as db:
        assert db.execute("select version_num from alembic_version").fetchall() == [(HEAD,)]
    db.close()


@pytest.mark.parametrize("start", ["0001", "0002", "0003", "0004"])
def test_a_database_at_each_earlier_migration_is_upgraded_to_the_newest(database_url: str, start: str) -> None:
    """Each migration after ``start`` runs on both backends (0003 and 0004 on PostgreSQL too), keeping the jobs."""
    engine = create_engine(sqlalchemy_url(database_url, Path()))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, start)
        connection.execute(text("insert into jobs (id, status, book_id, model, pipeline, text_chars, cache_key, "
                                "created_at) values ('old', 'queued', 'b', 'tiny', '[\"entity\"]', 3, 'k', 1)"))
    engine.dispose()
    store = JobStore(database_url)
    try:
        tables = set(inspect(store.database.engine).get_table_names())
        assert {"batches", "batch_jobs", "rate_counters", "rate_entries"} <= tables
        with store.database.reading() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalars().all() == [HEAD]
        claimed = store.claim_next("w", time.time())
        assert claimed is not None and (claimed.id, claimed.status, claimed.priority) == ("old", "running", 0)
        storage = DatabaseRateStorage(store.database)
        assert storage.acquire_entry("k", 1, 60) and not storage.acquire_entry("k", 1, 60)
        assert storage.acquire_sliding_window_entry("c", 10, 60, 10) and storage.get_sliding_window("c", 60)[2] == 10
    finally:
        store.close()


def test_an_exhausted_connection_pool_answers_like_a_database_that_is_down(database_url: str) -> None:
    """Every connection busy past the pool's timeout: DatabaseUnavailable (the API's 503), never SQLAlchemy's error."""
    store = JobStore(database_url)
    assert isinstance(store.database.engine.pool, UnavailableWhenExhausted)
    store.close()
    engine = create_engine(sqlalchemy_url(database_url, Path()), poolclass=UnavailableWhenExhausted, pool_size=1,
                           max_overflow=0, pool_timeout=0.2)
    try:
        with engine.connect() as held:
            held.execute(text("select 1"))
            with pytest.raises(DatabaseUnavailable):
                engine.connect()
        with engine.connect() as again:  # the connection back in the pool serves the next request
            assert again.execute(text("select 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.fixture
def idle_service(tiny_models_dir: Path, tmp_path: Path, database_url: str) -> Iterator[JobService]:
    """Submissions are recorded and queued, but no worker runs them."""
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path / "data", max_queued_jobs=3,
                        database_url=database_setting(database_url),
                        max_job_chars=1000)
    service = JobService(settings, NLPService(settings))
    yield service
    service.stop()


def test_submissions_queue_in_order_until_the_queue_is_full(idle_service: JobService) -> None:
    jobs = [idle_service.submit(Submission(text=f"Text number {n}."))[0] for n in range(3)]
    assert [idle_service.position(job) for job in jobs] == [1, 2, 3]
    assert idle_service.store.ids("queued") == [job.id for job in jobs]
    with pytest.raises(QueueFull) as full:
        idle_service.submit(Submission(text="One too many."))
    assert full.value.retry_after >= 5
    idle_service.cancel(jobs[0].id)
    assert idle_service.position(idle_service.get(jobs[1].id)) == 1
    idle_service.submit(Submission(text="Room again."))


def test_an_idempotency_key_returns_the_first_job_and_refuses_a_different_request(idle_service: JobService) -> None:
    first, created = idle_service.submit(Submission(text="Marley was dead.", idempotency_key="k-1"))
    again, created_again = idle_service.submit(Submission(text="Marley was dead.", idempotency_key="k-1"))
    assert (created, created_again, again.id) == (True, False, first.id)
    with pytest.raises(IdempotencyConflict, match="k-1"):
        idle_service.submit(Submission(text="Scrooge was not.", idempotency_key="k-1"))
    assert idle_service.store.count("queued") == 1


def test_invalid_submissions_are_refused_before_anything_is_stored(idle_service: JobService) -> None:
    with pytest.raises(TextTooLarge):
        idle_service.submit(Submission(text="x" * 1001))
    with pytest.raises(ModelNotAvailable, match="available: tiny"):
        idle_service.submit(Submission(text="text", model="big"))
    with pytest.raises(InvalidPipeline):
        idle_service.submit(Submission(text="text", pipeline=("coref",)))
    assert idle_service.page(None, 10, 0) == ([], 0)
    assert list(idle_service.files.texts.iterdir()) == []


def test_results_and_cancellation_follow_the_status(idle_service: JobService) -> None:
    job, _ = idle_service.submit(Submission(text="Not run yet."))
    with pytest.raises(JobNotFinished, match="has not started"):
        idle_service.results.json(job)
    cancelled = idle_service.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.expires_at is not None
    with pytest.raises(JobAlreadyFinished):
        idle_service.cancel(job.id)
    with pytest.raises(JobNotFound):
        idle_service.get("no-such-job")
    assert idle_service.page("cancelled", 10, 0)[1] == 1
    assert idle_service.page("queued", 10, 0)[1] == 0
