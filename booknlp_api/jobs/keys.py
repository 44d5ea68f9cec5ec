"""API keys: who may call the service, whether they see every job (admin), and their own limits.

A key is only ever kept as its SHA-256 (``sha256:<hex>``): keys are 256 random bits, so a slow
password hash would add nothing but latency. Records live in the job database (table ``api_keys``)
behind the small ``KeyStore`` interface, so a shared database can hold them later; a mounted keys
file (``keys_file``) adds read-only keys beside them.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

KEY_PREFIX = "bnlp_"
HASH_PREFIX = "sha256:"

_SCHEMA = """
create table if not exists api_keys (
    name text primary key,
    key_hash text not null unique,
    admin integer not null default 0,
    created_at real not null,
    revoked_at real,
    rate_limit text,
    max_active_jobs integer,
    max_chars_per_day integer
);
"""


@dataclass(frozen=True)
class KeyLimits:
    """A key's own limits; None: the service-wide default from the settings."""

    rate_limit: str | None = None
    max_active_jobs: int | None = None
    max_chars_per_day: int | None = None


@dataclass(frozen=True)
class ApiKey:
    name: str
    key_hash: str
    admin: bool = False
    created_at: float = 0.0
    revoked_at: float | None = None
    limits: KeyLimits = field(default_factory=KeyLimits)
    source: str = "store"
    """Where it is kept: ``store`` (created with the CLI) or ``file`` (BOOKNLP_API_KEYS_FILE)."""


class KeyExists(Exception):
    """A key of that name is already recorded (revoked ones too: names stay unique, jobs keep their owner)."""


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """API key records in the job database; every method is one short statement."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, name: str, *, admin: bool = False, limits: KeyLimits | None = None) -> str:
        """Record a new key and return it: the only time it exists outside the caller's hands."""
        key, limits = new_key(), limits or KeyLimits()
        try:
            with self._lock:
                self._conn.execute(
                    "insert into api_keys (name, key_hash, admin, created_at, rate_limit, max_active_jobs, "
                    "max_chars_per_day) values (?, ?, ?, ?, ?, ?, ?)",
                    (name, hash_key(key), int(admin), time.time(), limits.rate_limit, limits.max_active_jobs,
                     limits.max_chars_per_day))
        except sqlite3.IntegrityError as exc:
            raise KeyExists(name) from exc
        return key

    def revoke(self, name: str) -> bool:
        """False when no unrevoked key has that name."""
        with self._lock:
            changed = self._conn.execute("update api_keys set revoked_at = ? where name = ? and revoked_at is null",
                                         (time.time(), name)).rowcount
        return bool(changed)

    def all(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self._lock:
            rows = self._conn.execute("select * from api_keys order by created_at").fetchall()
        return [_key(row) for row in rows]

    def active(self) -> list[ApiKey]:
        return [key for key in self.all() if key.revoked_at is None]


def _key(row: sqlite3.Row) -> ApiKey:
    limits = KeyLimits(rate_limit=row["rate_limit"], max_active_jobs=row["max_active_jobs"],
                       max_chars_per_day=row["max_chars_per_day"])
    return ApiKey(name=row["name"], key_hash=row["key_hash"], admin=bool(row["admin"]), created_at=row["created_at"],
                  revoked_at=row["revoked_at"], limits=limits)
