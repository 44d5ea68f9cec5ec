"""Per-key rate counters in the job database: a ``limits`` storage every API process on that database shares.

The API's request limit (moving window) and characters per day (sliding-window counter) count here by
default (``BOOKNLP_RATE_LIMIT_STORAGE=database``), so N API replicas on one PostgreSQL give a key its
quota once, not N times. Each check-and-count runs in one transaction holding a lock on the limit's key
(PostgreSQL: a transaction-level advisory lock; SQLite: the write lock every writing transaction takes),
so two processes asking for a key's last unit at once never both get it.

``rate_entries`` holds one row per counted hit (moving window: ``Retry-After`` is exactly when the oldest
leaves the window); ``rate_counters`` one row per key and window (fixed window, sliding-window counter).
Each process deletes every expired row at most once a minute, on the way (a stale row is never counted:
every read bounds the window), so keys that never come back leave nothing behind. A count reads the
key's rows in its window through one index (key, time, cost), so its cost grows with the key's quota
(``benchmarks/rate_limits.py``). Times are wall-clock Unix
seconds, as everywhere in the job database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from limits.storage import MovingWindowSupport, SlidingWindowCounterSupport, Storage
from limits.storage.base import TimestampedSlidingWindow
from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from booknlp_api.jobs.database import Database
from booknlp_api.jobs.errors import DatabaseUnavailable
from booknlp_api.jobs.tables import rate_counters, rate_entries

_LOCK_SPACE = 7_311_313
"""First half of the two-int PostgreSQL advisory lock ids of rate keys (7_311_312 is the job store's per-owner
release lock; the migration's is a single bigint id, a key space of its own)."""
SWEEP_SECONDS = 60.0
"""How often one process deletes every expired row (on the way, when it next counts)."""


class DatabaseRateStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """The ``limits`` storage interface on the job database's tables (SQLite or PostgreSQL)."""

    STORAGE_SCHEME = None  # not reachable from a URI: it is built on the service's open database

    def __init__(self, database: Database) -> None:
        super().__init__()
        self.database = database
        self._engine = database.engine
        self._next_sweep = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError, DatabaseUnavailable

    # -- the locked transaction every count runs in ------------------------------------------------
    @contextmanager
    def _counting(self, key: str) -> Iterator[tuple[Connection, float]]:
        """A transaction holding ``key``'s lock until it commits, and the time it counts at."""
        now = time.time()
        self._sweep_if_due(now)
        with self._engine.begin() as conn:
            # SQLite: "begin immediate" (jobs.database) already holds the database's write lock.
            if self.database.is_postgres:
                conn.execute(text("select pg_advisory_xact_lock(:space, hashtext(:key))"),
                             {"space": _LOCK_SPACE, "key": key})
            yield conn, now

    def _sweep_if_due(self, now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            self.sweep(now)

    def sweep(self, now: float) -> int:
        """Delete every expired counter and entry, of every key; how many rows went."""
        with self._engine.begin() as conn:
            gone = conn.execute(delete(rate_counters).where(rate_counters.c.expires_at <= now)).rowcount
            return gone + conn.execute(delete(rate_entries).where(rate_entries.c.expires_at <= now)).rowcount

    # -- fixed-window counters (Storage) --------------------------------------------------------------
    def _incr(self, conn: Connection, key: str, expiry: float, amount: int, now: float) -> int:
        conn.execute(delete(rate_counters).where(rate_counters.c.key == key, rate_counters.c.expires_at <= now))
        dialect = postgresql if self.database.is_postgres else sqlite
        upsert = dialect.insert(rate_counters).values(key=key, count=amount, expires_at=now + expiry)
        conn.execute(upsert.on_conflict_do_update(index_elements=[rate_counters.c.key],
                                                  set_={"count": rate_counters.c.count + amount}))
        return int(conn.execute(select(rate_counters.c.count).where(rate_counters.c.key == key)).scalar_one())

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        with self._counting(key) as (conn, now):
            return self._incr(conn, key, expiry, amount, now)

    @staticmethod
    def _count(conn: Connection, key: str, now: float) -> int:
        found = conn.execute(select(rate_counters.c.count).where(
            rate_counters.c.key == key, rate_counters.c.expires_at > now)).scalar()
        return int(found or 0)

    def get(self, key: str) -> int:
        with self.database.reading() as conn:
            return self._count(conn, key, time.time())

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with self.database.reading() as conn:
            found = conn.execute(select(rate_counters.c.expires_at).where(
                rate_counters.c.key == key, rate_counters.c.expires_at > now)).scalar()
        return float(found) if found is not None else now

    def check(self) -> bool:
        with self.database.reading() as conn:
            return conn.execute(select(1)).scalar() == 1

    def reset(self) -> int | None:
        with self._engine.begin() as conn:
            gone = conn.execute(delete(rate_counters)).rowcount
            return gone + conn.execute(delete(rate_entries)).rowcount

    def clear(self, key: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(rate_counters).where(rate_counters.c.key == key))
            conn.execute(delete(rate_entries).where(rate_entries.c.key == key))

    # -- moving window (one row per hit, with its cost) -----------------------------------------------
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._counting(key) as (conn, now):
            used = conn.execute(select(func.coalesce(func.sum(rate_entries.c.amount), 0)).where(
                rate_entries.c.key == key, rate_entries.c.at > now - expiry)).scalar_one()
            if int(used) + amount > limit:
                return False
            conn.execute(insert(rate_entries).values(key=key, at=now, amount=amount, expires_at=now + expiry))
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        with self.database.reading() as conn:
            oldest, used = conn.execute(
                select(func.min(rate_entries.c.at), func.coalesce(func.sum(rate_entries.c.amount), 0)).where(
                    rate_entries.c.key == key, rate_entries.c.at > now - expiry)).one()
        return (float(oldest) if oldest is not None else now), int(used)

    # -- sliding-window counter (this window's and the previous window's counters) --------------------
    def _window(self, conn: Connection, key: str, expiry: int, now: float) -> tuple[int, float, int, float]:
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous, current = self._count(conn, previous_key, now), self._count(conn, current_key, now)
        # The same weights as limits' own storages: the share of the previous window still inside the sliding one.
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._counting(key) as (conn, now):
            previous, previous_ttl, current, _ = self._window(conn, key, expiry, now)
            if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
                return False
            # Twice the window: the counter is still read as the "previous" one through the next window.
            self._incr(conn, self.sliding_window_keys(key, expiry, now)[1], 2 * expiry, amount, now)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        with self.database.reading() as conn:
            return self._window(conn, key, expiry, time.time())

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        for window_key in self.sliding_window_keys(key, expiry, time.time()):
            self.clear(window_key)
