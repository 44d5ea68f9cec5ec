"""API keys: who may call the service, whether they see every job (admin), and their own limits.

A key is only ever kept as its SHA-256 (``sha256:<hex>``): keys are 256 random bits, so a slow
password hash would add nothing but latency. Records live in the job database (table ``api_keys``),
SQLite or PostgreSQL (``jobs.database``), so every API process on a shared database knows the same
keys; a mounted keys file (``keys_file``) adds read-only keys beside them.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from booknlp_api.jobs.database import Database
from booknlp_api.jobs.tables import api_keys

KEY_PREFIX = "bnlp_"
HASH_PREFIX = "sha256:"


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
    """API key records in the job database (``jobs.database``); every method is one short statement."""

    def __init__(self, database: Database | Path | str) -> None:
        self.database = Database.open(database)
        self._engine = self.database.engine

    def close(self) -> None:
        self.database.close()

    def create(self, name: str, *, admin: bool = False, limits: KeyLimits | None = None) -> str:
        """Record a new key and return it: the only time it exists outside the caller's hands."""
        key, limits = new_key(), limits or KeyLimits()
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(api_keys).values(
                    name=name, key_hash=hash_key(key), admin=int(admin), created_at=time.time(),
                    rate_limit=limits.rate_limit, max_active_jobs=limits.max_active_jobs,
                    max_chars_per_day=limits.max_chars_per_day))
        except IntegrityError as exc:
            raise KeyExists(name) from exc
        return key

    def revoke(self, name: str) -> bool:
        """False when no unrevoked key has that name."""
        with self._engine.begin() as conn:
            changed = conn.execute(update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                                   .values(revoked_at=time.time())).rowcount
        return bool(changed)

    def all(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self.database.reading() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).fetchall()
        return [_key(row._mapping) for row in rows]

    def active(self) -> list[ApiKey]:
        return [key for key in self.all() if key.revoked_at is None]


def _key(row: Mapping[str, Any]) -> ApiKey:
    limits = KeyLimits(rate_limit=row["rate_limit"], max_active_jobs=row["max_active_jobs"],
                       max_chars_per_day=row["max_chars_per_day"])
    return ApiKey(name=row["name"], key_hash=row["key_hash"], admin=bool(row["admin"]), created_at=row["created_at"],
                  revoked_at=row["revoked_at"], limits=limits)
