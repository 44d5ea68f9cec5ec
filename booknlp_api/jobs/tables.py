"""The job database's tables as they are at the newest migration (``jobs/migrations``), for queries.

One schema for SQLite and PostgreSQL. Flags stay integers (0/1) and times Unix seconds, as the
SQLite databases released before migrations have them, so old rows read back unchanged.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("book_id", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("pipeline", Text, nullable=False),
    Column("sections", Text),
    Column("text_chars", Integer, nullable=False),
    Column("text_offset", Integer, nullable=False, default=0),
    Column("cache_key", Text, nullable=False),
    Column("cached_from", Text),
    Column("idempotency_key", Text, unique=True),
    Column("request_hash", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("expires_at", Float),
    Column("expired", Integer, nullable=False, default=0),
    Column("progress", Text),
    Column("error", Text),
    Column("analysis", Text),
    Column("result_dir", Text),
    Column("worker_id", Text),
    Column("heartbeat_at", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Integer, nullable=False, default=0),
    Column("precision", Text, nullable=False, default="exact"),
    Column("owner", Text),
    Column("priority", Integer, nullable=False, default=0),
    Column("max_active", Integer),
    sqlite_autoincrement=True,
)

workers = Table(
    "workers", metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("state", Text, nullable=False, default="loading"),
    Column("error", Text),
    Column("device", Text),
    Column("models", Text),
)

api_keys = Table(
    "api_keys", metadata,
    Column("name", Text, primary_key=True),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("admin", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("rate_limit", Text),
    Column("max_active_jobs", Integer),
    Column("max_chars_per_day", Integer),
)

blobs = Table(
    "blobs", metadata,
    Column("name", Text, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)
"""Submitted texts and published results when the data lives in the database (PostgreSQL): compressed bytes."""

batches = Table(
    "batches", metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text),
    Column("idempotency_key", Text, unique=True),
    Column("request_hash", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
"""Many books sent in one call; their jobs are ordinary jobs, listed in ``batch_jobs``."""

batch_jobs = Table(
    "batch_jobs", metadata,
    Column("batch_id", Text, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("job_id", Text, nullable=False),
)

rate_counters = Table(
    "rate_counters", metadata,
    Column("key", Text, primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("rate_counters_expires", "expires_at"),
)
"""Per-key rate limit counters, one per key and window (``jobs.rate_counters``: characters per day)."""

rate_entries = Table(
    "rate_entries", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
    Column("at", Float, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("rate_entries_key_at", "key", "at", "amount"),  # covers the sum over a window
    Index("rate_entries_expires", "expires_at"),
)
"""One row per counted hit of a moving-window limit (``jobs.rate_counters``: requests per key)."""
